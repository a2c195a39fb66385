//! Metrics: one list of names, two outputs.
//!
//! [`ALL`] is the only list of what the platform measures. In Lambda, every observation is
//! printed as one CloudWatch Embedded Metric Format line on stdout ([`Emf`]): CloudWatch turns
//! the log line into a metric, with no API call and no extra latency. The local server keeps the
//! same observations in a [`Registry`] and shows them on `GET /metrics` in the Prometheus text
//! format. Alarms and the dashboard in `template.yaml` name metrics from this list (a template
//! test checks it).
//!
//! The sink is process-wide, like `tracing`'s subscriber: it is installed once at start by the
//! binary (`install`), and code anywhere records with [`count`] or [`observe`]. With no sink
//! installed (library tests, tools) recording does nothing.
//!
//! Every dimension's values come from a bounded set (image formats, the two variant passes,
//! error codes, route templates), so neither CloudWatch nor the registry grows with traffic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// The unit of a metric, as CloudWatch names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
}

impl Unit {
    pub fn cloudwatch(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// Whether values add up (a counter) or are each a measurement (a latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
}

/// One metric: its CloudWatch name, unit and kind, and the one dimension it may carry.
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub kind: Kind,
    pub dimension: Option<&'static str>,
    pub help: &'static str,
}

macro_rules! metrics {
    ($($id:ident = $name:literal, $unit:ident, $kind:ident, $dim:expr, $help:literal;)*) => {
        $(pub static $id: Metric = Metric {
            name: $name, unit: Unit::$unit, kind: Kind::$kind, dimension: $dim, help: $help,
        };)*
        /// Every metric the platform emits, in the order `/metrics` lists them.
        pub static ALL: &[&Metric] = &[$(&$id),*];
    };
}

metrics! {
    UPLOADS = "Uploads", Count, Counter, Some("Format"), "Uploads accepted (new images and duplicates; a redelivery is not counted again), by format.";
    UPLOAD_BYTES = "UploadBytes", Bytes, Counter, Some("Format"), "Bytes received in accepted uploads (duplicates included; after metadata is stripped), by format.";
    DUPLICATES = "Duplicates", Count, Counter, None, "Uploads whose bytes were already stored.";
    INGEST_LATENCY = "IngestLatency", Milliseconds, Histogram, None, "Time an upload took to check and to store, per file.";
    VARIANT_PASSES = "VariantPasses", Count, Counter, Some("Pass"), "Variant passes that stored their variants, by pass (first or avif).";
    VARIANT_FAILURES = "VariantFailures", Count, Counter, Some("Pass"), "Variant passes that failed, by pass; a retried pass counts each failure.";
    VARIANT_LATENCY = "VariantLatency", Milliseconds, Histogram, Some("Pass"), "Time a variant pass took, by pass.";
    IMPORT_OUTCOMES = "ImportOutcomes", Count, Counter, Some("Outcome"), "Import tries by outcome: ok, retrying (a transient failure, tried again), or the error code of the final failure.";
    KEEPALIVE_OUTCOMES = "KeepaliveOutcomes", Count, Counter, Some("Outcome"), "Keep-alive views by outcome.";
    MEMES_CHARGED = "MemesCharged", Count, Counter, None, "Tokens taken for memes, once each (a meme that then cannot be made is also counted in MemeRefunds).";
    PAYMENT_REQUIRED = "PaymentRequired", Count, Counter, None, "Meme requests refused with 402 for want of tokens.";
    MEME_REFUNDS = "MemeRefunds", Count, Counter, None, "Tokens given back because a charged meme could not be made.";
    LINK_USES = "LinkUses", Count, Counter, None, "Uses of invitation links claimed by uploads (uses given back after a failed store are not subtracted).";
    CLIENT_ERRORS = "ClientErrors", Count, Counter, Some("Route"), "Answers with a 4xx status (and 501, a format not offered), by route template.";
    SERVER_ERRORS = "ServerErrors", Count, Counter, Some("Route"), "Answers with a 5xx status other than 501, by route template.";
}

/// The upper bounds of the latency histograms' buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [f64; 13] =
    [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0];

/// The label given to a dimension that was not known (a 404 has no route template).
pub const UNMATCHED: &str = "unmatched";

/// Where observations go.
pub enum Sink {
    Emf(Emf),
    Registry(Registry),
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Installs the process's sink. The first call wins; later ones return false.
pub fn install(sink: Sink) -> bool {
    SINK.set(sink).is_ok()
}

/// Installs EMF lines on stdout under `namespace`: what every Lambda function does at start.
pub fn install_emf(namespace: &str) {
    install(Sink::Emf(Emf::stdout(namespace)));
}

/// The installed registry, where the process keeps its metrics for `/metrics`.
pub fn registry() -> Option<&'static Registry> {
    match SINK.get() {
        Some(Sink::Registry(r)) => Some(r),
        _ => None,
    }
}

/// Adds `n` to a counter.
pub fn count(metric: &'static Metric, dimension: Option<&str>, n: u64) {
    record(metric, dimension, n as f64);
}

/// Records one measurement of a histogram, such as a latency in milliseconds.
pub fn observe(metric: &'static Metric, dimension: Option<&str>, value: f64) {
    record(metric, dimension, value);
}

/// The milliseconds since `start`, for [`observe`].
pub fn millis_since(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn record(metric: &'static Metric, dimension: Option<&str>, value: f64) {
    debug_assert_eq!(metric.dimension.is_some(), dimension.is_some(), "{} takes {:?}", metric.name, metric.dimension);
    match SINK.get() {
        Some(Sink::Emf(emf)) => emf.write(metric, dimension, value),
        Some(Sink::Registry(r)) => r.record(metric, dimension, value),
        None => {}
    }
}

/// CloudWatch Embedded Metric Format, one JSON object per line.
pub struct Emf {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Emf {
    /// Lines on stdout, where Lambda sends them to CloudWatch Logs.
    pub fn stdout(namespace: impl Into<String>) -> Emf {
        Emf::new(namespace, Box::new(std::io::stdout()))
    }

    pub fn new(namespace: impl Into<String>, out: Box<dyn Write + Send>) -> Emf {
        Emf { namespace: namespace.into(), out: Mutex::new(out) }
    }

    /// The EMF line for one observation at `timestamp_ms` (milliseconds since the epoch).
    /// The request id, when there is one, rides along as a plain property: CloudWatch ignores it
    /// for the metric, and Logs Insights can join the line to the request's other lines.
    pub fn line(&self, metric: &Metric, dimension: Option<&str>, value: f64, timestamp_ms: u128) -> String {
        let dimensions: Vec<&str> = metric.dimension.into_iter().collect();
        let mut doc = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": metric.name, "Unit": metric.unit.cloudwatch()}],
                }],
            },
            metric.name: value,
        });
        if let (Some(key), Some(value)) = (metric.dimension, dimension) {
            doc[key] = value.into();
        }
        if let Some(id) = crate::context::request_id() {
            doc["request_id"] = id.into();
        }
        doc.to_string()
    }

    fn write(&self, metric: &Metric, dimension: Option<&str>, value: f64) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
        let mut line = self.line(metric, dimension, value, now);
        line.push('\n');
        // One write of the whole line, so that it never interleaves with a log line. A poisoned
        // lock still guards a usable writer.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Counter(f64),
    Histogram { buckets: [u64; LATENCY_BUCKETS_MS.len()], count: u64, sum: f64 },
}

/// The observations of a long-running process, for the Prometheus text format. Its size is
/// bounded by the metrics times their dimensions' values.
#[derive(Default)]
pub struct Registry {
    values: Mutex<BTreeMap<(&'static str, String), Value>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn record(&self, metric: &Metric, dimension: Option<&str>, value: f64) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let entry =
            values.entry((metric.name, dimension.unwrap_or_default().to_owned())).or_insert(match metric.kind {
                Kind::Counter => Value::Counter(0.0),
                Kind::Histogram => Value::Histogram { buckets: [0; LATENCY_BUCKETS_MS.len()], count: 0, sum: 0.0 },
            });
        match entry {
            Value::Counter(total) => *total += value,
            Value::Histogram { buckets, count, sum } => {
                for (bucket, bound) in buckets.iter_mut().zip(LATENCY_BUCKETS_MS) {
                    if value <= bound {
                        *bucket += 1;
                    }
                }
                *count += 1;
                *sum += value;
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4) of every metric in [`ALL`]. A
    /// metric without a dimension is listed with 0 before its first observation, so that a
    /// scraper sees it from the start.
    pub fn render(&self) -> String {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        for metric in ALL {
            let name = prometheus_name(metric);
            let kind = match metric.kind {
                Kind::Counter => "counter",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}", metric.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let mut series: Vec<(&String, &Value)> =
                values.iter().filter(|((m, _), _)| *m == metric.name).map(|((_, d), v)| (d, v)).collect();
            let zero = (String::new(), Value::Counter(0.0));
            if series.is_empty() && metric.dimension.is_none() && metric.kind == Kind::Counter {
                series.push((&zero.0, &zero.1));
            }
            for (dimension, value) in series {
                let label = |extra: &str| {
                    let mut labels: Vec<String> = metric
                        .dimension
                        .map(|d| format!("{}=\"{}\"", d.to_ascii_lowercase(), escape(dimension)))
                        .into_iter()
                        .collect();
                    if !extra.is_empty() {
                        labels.push(extra.to_owned());
                    }
                    if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) }
                };
                match value {
                    Value::Counter(total) => {
                        let _ = writeln!(out, "{name}{} {total}", label(""));
                    }
                    Value::Histogram { buckets, count, sum } => {
                        for (n, bound) in buckets.iter().zip(LATENCY_BUCKETS_MS) {
                            let _ = writeln!(out, "{name}_bucket{} {n}", label(&format!("le=\"{bound}\"")));
                        }
                        let _ = writeln!(out, "{name}_bucket{} {count}", label("le=\"+Inf\""));
                        let _ = writeln!(out, "{name}_sum{} {sum}", label(""));
                        let _ = writeln!(out, "{name}_count{} {count}", label(""));
                    }
                }
            }
        }
        out
    }
}

/// The Prometheus name of a metric: `imghost_`, the CloudWatch name in snake case, the unit
/// where the name does not already say it, and `_total` for counters (`UploadBytes` becomes
/// `imghost_upload_bytes_total`, `IngestLatency` `imghost_ingest_latency_milliseconds`).
pub fn prometheus_name(metric: &Metric) -> String {
    let mut name = String::from("imghost");
    for c in metric.name.chars() {
        if c.is_ascii_uppercase() {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    if metric.unit == Unit::Milliseconds {
        name.push_str("_milliseconds");
    }
    if metric.kind == Kind::Counter {
        name.push_str("_total");
    }
    name
}

/// A label value with the three characters the text format escapes.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_cloudwatch_safe() {
        // Given every metric, then no two share a name and each is a plain CamelCase word.
        let mut seen = std::collections::HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_alphanumeric()) && m.name.starts_with(char::is_uppercase));
        }
    }

    #[test]
    fn emf_line_names_its_metric_dimension_and_value() {
        // Given an EMF sink, when one upload of a JPEG is counted,
        let emf = Emf::new("imghost/test", Box::new(std::io::sink()));
        let line: serde_json::Value =
            serde_json::from_str(&emf.line(&UPLOAD_BYTES, Some("jpeg"), 2048.0, 1_700_000_000_000)).unwrap();
        // then the line is one EMF document with the value at the root.
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], "imghost/test");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Format"]]));
        assert_eq!(directive["Metrics"], serde_json::json!([{"Name": "UploadBytes", "Unit": "Bytes"}]));
        assert_eq!(line["Format"], "jpeg");
        assert_eq!(line["UploadBytes"], 2048.0);
        // A metric without a dimension has one empty dimension set.
        let line: serde_json::Value = serde_json::from_str(&emf.line(&DUPLICATES, None, 1.0, 0)).unwrap();
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([[]]));
    }

    #[test]
    fn registry_renders_counters_and_histograms() {
        // Given a registry with two uploads, a duplicate and three latencies,
        let r = Registry::new();
        r.record(&UPLOADS, Some("jpeg"), 1.0);
        r.record(&UPLOADS, Some("jpeg"), 1.0);
        r.record(&UPLOADS, Some("png\"x"), 1.0);
        for ms in [3.0, 40.0, 70_000.0] {
            r.record(&INGEST_LATENCY, None, ms);
        }
        let text = r.render();
        let has = |line: &str| text.lines().any(|l| l == line);
        // then each series is listed with its labels, escaped,
        assert!(has("# TYPE imghost_uploads_total counter"), "{text}");
        assert!(has("imghost_uploads_total{format=\"jpeg\"} 2"), "{text}");
        assert!(has("imghost_uploads_total{format=\"png\\\"x\"} 1"), "{text}");
        // and the histogram's buckets are cumulative, with +Inf equal to the count.
        assert!(has("imghost_ingest_latency_milliseconds_bucket{le=\"5\"} 1"), "{text}");
        assert!(has("imghost_ingest_latency_milliseconds_bucket{le=\"50\"} 2"), "{text}");
        assert!(has("imghost_ingest_latency_milliseconds_bucket{le=\"60000\"} 2"), "{text}");
        assert!(has("imghost_ingest_latency_milliseconds_bucket{le=\"+Inf\"} 3"), "{text}");
        assert!(has("imghost_ingest_latency_milliseconds_count 3"), "{text}");
        assert!(has("imghost_ingest_latency_milliseconds_sum 70043"), "{text}");
        // Counters without a dimension show 0 before their first observation.
        assert!(has("imghost_duplicates_total 0"), "{text}");
    }
}
