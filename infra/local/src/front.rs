//! The front door of the local server: the accept loop, and a check of every request head
//! before hyper sees it.
//!
//! Every error this platform returns is a JSON body `{"error": {"code", "message"}}`. hyper's
//! HTTP/1 server refuses some requests itself, before any service runs, and answers those with a
//! bare status line and an empty body (`Conn::on_parse_error`, with no hook). So each accepted
//! stream is wrapped in a [`Guarded`] stream that reads ahead of hyper: it holds back the bytes
//! of each request head until the whole head has arrived, checks it for everything hyper would
//! refuse (and for what we refuse: oversized heads, request smuggling shapes), and only then lets
//! hyper read it. After a head it follows the body framing (Content-Length or chunked) so that it
//! knows where the next head starts, on keep-alive and pipelined connections alike.
//!
//! When a head fails, hyper never sees its bytes: the wrapper reports end of stream to hyper's
//! read side instead. hyper only reads the next head once it has finished the response to the
//! previous request (with `half_close` on, it does not read while a request is in flight), so at
//! that point it is idle, takes the end of stream as the client leaving, and shuts the stream
//! down: `Dispatcher::poll_inner` calls `Conn::poll_shutdown`, which flushes hyper's write buffer
//! and then calls `poll_shutdown` on the IO. The wrapper writes its own complete JSON answer
//! there, before closing. Timeouts (a head that never completes, an idle keep-alive connection,
//! a body that never arrives, a client that never reads) are enforced here too.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tracing::{Instrument, debug, info, warn};

/// Limits the front door enforces on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request target (the URI in the request line), in bytes. Longer: 414
    /// `uri_too_long`. Default 8 KiB.
    pub max_uri_bytes: usize,
    /// Largest request head (request line and header lines with their line ends), in bytes.
    /// Larger: 431 `headers_too_large`. This is also the most a connection buffers. Default
    /// 32 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one head (and trailer fields after a chunked body). More: 431
    /// `headers_too_large`. Default 100.
    pub max_headers: usize,
    /// How long a request head may take to arrive once its first byte has, and how long the
    /// first head may take after the connection is accepted. Late: 408 `request_timeout`, then
    /// the connection closes. Default 10 s.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between a response and the next request
    /// before it is closed (without an answer: there is no request to answer). Default 60 s.
    pub idle_timeout: Duration,
    /// How long a request body may take to arrive in full, from the end of its head. Late: the
    /// connection closes. Default 300 s.
    pub body_timeout: Duration,
    /// How long a response write may make no progress (a client that does not read) before the
    /// connection closes. Default 30 s.
    pub write_timeout: Duration,
    /// Most connections served at once. At the cap the server stops accepting, so new
    /// connections wait in the kernel's backlog until one closes. Default 1024.
    pub max_connections: usize,
    /// On shutdown, how long requests in flight may take to finish before their connections
    /// are dropped. Default 10 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_bytes: 8 * 1024,
            max_head_bytes: 32 * 1024,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// Refuses settings that cannot serve anything: no connections at all, or a head limit
    /// too small for an ordinary request line.
    fn check(&self) -> io::Result<()> {
        let invalid = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
        if self.max_connections == 0 {
            return invalid("the connection cap must be at least 1");
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return invalid("the connection cap is larger than the server can count");
        }
        if self.max_head_bytes < MIN_HEAD_BYTES {
            return invalid("the request head limit must be at least 1 KiB");
        }
        Ok(())
    }
}

/// The smallest head limit [`Limits::check`] accepts.
const MIN_HEAD_BYTES: usize = 1024;
/// Longest chunk-size line (size, whitespace and extensions, without its line end). Real
/// clients send a few hex digits; the limit keeps a line from being an unbounded stream.
const MAX_CHUNK_LINE: usize = 4096;
/// Most bytes of trailer fields after a chunked body; hyper itself stops at 16 KiB.
const MAX_TRAILER_BYTES: usize = 8 * 1024;
/// hyper refuses header names of 64 KiB or more with a bare 431.
const MAX_HEADER_NAME: usize = (1 << 16) - 1;
/// hyper refuses request targets longer than this with a bare 414, and `http::Uri` will not
/// hold more.
const MAX_URI_HYPER: usize = (u16::MAX - 1) as usize;
/// After writing a refusal, how long to read and discard what the client is still sending
/// before closing. Closing a socket with unread input makes the kernel send a reset, which
/// can destroy the refusal before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
/// How long to wait before accepting again after an accept error such as running out of file
/// descriptors, so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How much the connection buffer starts with; it grows to `max_head_bytes` when a head or a
/// fast body needs it.
const INITIAL_BUFFER: usize = 8 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, every connection through the front
/// door. Then it stops accepting, lets requests in flight finish for up to
/// [`Limits::shutdown_grace`], and drops what is left.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    limits.check()?;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // hyper must not read while a request is in flight: an end of stream reported then
        // (after a refused pipelined head) would make it drop the response it is working on.
        .half_close(true)
        // The front door owns the head timeout, so that a late head gets a JSON 408 rather
        // than hyper's silent close.
        .header_read_timeout(None)
        // Everything the front door lets through must parse in hyper: its buffer holds a
        // whole head with room to spare, and it allows as many fields as we do.
        .max_buf_size((limits.max_head_bytes * 2).max(HYPER_DEFAULT_MAX_BUF))
        .max_headers(limits.max_headers);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    'accept: loop {
        // At the cap, wait for a slot before accepting: the connections that arrive meanwhile
        // stay in the kernel's backlog instead of being accepted and left unserved.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break 'accept,
            Some(ended) = connections.join_next(), if !connections.is_empty() => {
                report_panic(ended);
                continue 'accept;
            }
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; if it were, nothing more could be served.
                Err(_) => break 'accept,
            },
        };
        let (stream, peer) = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'accept,
                Some(ended) = connections.join_next(), if !connections.is_empty() => report_panic(ended),
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => break accepted,
                    Err(e) => {
                        // Errors such as running out of file descriptors pass; the server
                        // keeps serving the connections it has.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        };
        // Small JSON answers should leave at once rather than wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let io = Guarded::new(stream, limits.clone());
        let connection = serve_connection(io, router.clone(), builder.clone(), stop_rx.clone(), permit);
        connections.spawn(connection.instrument(tracing::debug_span!("connection", %peer)));
    }

    // New connections are refused from here on rather than queued.
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while let Some(ended) = connections.join_next().await {
            report_panic(ended);
        }
    })
    .await;
    if drained.is_err() {
        warn!(left = connections.len(), "connections still busy after the shutdown grace period; dropping them");
        connections.shutdown().await;
    }
    Ok(())
}

/// hyper's own default read buffer limit (8 KiB + 100 × 4 KiB), which we never go below.
const HYPER_DEFAULT_MAX_BUF: usize = 8192 + 4096 * 100;

/// Runs hyper on one guarded stream until the connection ends, asking it to finish gracefully
/// when the server stops. The permit holds the connection's slot under the cap until then.
async fn serve_connection<S>(
    io: Guarded<S>,
    router: axum::Router,
    builder: Arc<http1::Builder>,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stop) => {
            // A connection on which hyper has not seen a byte of a request closes now (hyper's
            // `Dispatcher::disable_keep_alive`), and that includes one whose head has only
            // partly arrived, since the front door holds it back; a busy one closes after its
            // response.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// Completes when the server starts stopping (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Connection tasks do not panic by design; if one does, the server keeps going but says so.
fn report_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended
        && e.is_panic()
    {
        warn!(error = %e, "a connection task panicked");
    }
}

/// A refusal the front door answers itself: the status, the error code of the JSON body and
/// a message saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: u16,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal { status: 400, code: "bad_request", message: message.into() }
    }

    fn timeout(limits: &Limits) -> Refusal {
        let message = format!("the request head did not arrive within {} s", limits.header_timeout.as_secs_f64());
        Refusal { status: 408, code: "request_timeout", message }
    }

    fn uri_too_long(limits: &Limits) -> Refusal {
        let message = format!("the request target is longer than {} bytes", limits.max_uri_bytes);
        Refusal { status: 414, code: "uri_too_long", message }
    }

    fn headers_too_large(message: impl Into<String>) -> Refusal {
        Refusal { status: 431, code: "headers_too_large", message: message.into() }
    }

    /// A client error, so 400 rather than 505: every refusal of bad input is a 4xx here.
    fn version_not_supported() -> Refusal {
        let message = "only HTTP/1.0 and HTTP/1.1 are supported".to_owned();
        Refusal { status: 400, code: "http_version_not_supported", message }
    }

    /// The complete HTTP/1.1 response, which closes the connection. No router saw the request,
    /// so the request id (see `imghost::http::request_id`) is made and logged here.
    fn response(&self) -> Vec<u8> {
        let id = imghost::http::request_id::generate();
        info!(request_id = %id, status = self.status, code = self.code, "refused a request head");
        let body =
            serde_json::json!({"error": {"code": self.code, "message": self.message, "request_id": id}}).to_string();
        let reason = http::StatusCode::from_u16(self.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-request-id: {id}\r\nconnection: close\r\n\r\n{body}",
            self.status,
            body.len()
        )
        .into_bytes()
    }
}

/// How a request's body is framed, as the head that passed says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Exactly this many bytes (zero when the head names no length).
    Length(u64),
    Chunked,
}

/// Checks one complete request head (request line through the empty line) against what hyper
/// would refuse and what we refuse, and says how its body is framed.
fn check_head(head: &[u8], limits: &Limits) -> Result<Framing, Refusal> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut fields);
    let parsed = match request.parse(head) {
        Ok(parsed) => parsed,
        Err(e) => return Err(parse_refusal(e, head, request.method.is_some(), limits)),
    };
    if parsed != httparse::Status::Complete(head.len()) {
        // The scan that found the end of the head and httparse disagree; hyper would read
        // this head differently from us, which is exactly what must not pass.
        return Err(Refusal::bad_request("malformed request head"));
    }
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err(Refusal::bad_request("malformed request line"));
    };
    if target.len() > limits.max_uri_bytes.min(MAX_URI_HYPER) {
        return Err(Refusal::uri_too_long(limits));
    }
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(Refusal::bad_request("malformed request line: the method is not a valid token"));
    }
    if http::Uri::try_from(target).is_err() {
        return Err(Refusal::bad_request("malformed request line: the request target is not a valid URI"));
    }
    let http10 = version == 0;

    let mut length: Option<u64> = None;
    let mut codings = 0usize;
    let mut chunked_last = false;
    for field in request.headers.iter() {
        let name = field.name;
        if name.len() > MAX_HEADER_NAME {
            return Err(Refusal::headers_too_large("a header name is longer than 64 KiB"));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(Refusal::bad_request(format!("invalid header name {}", printable(name.as_bytes()))));
        }
        if http::HeaderValue::from_bytes(field.value).is_err() {
            return Err(Refusal::bad_request(format!("control byte in header {}", printable(name.as_bytes()))));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let value = decimal(field.value).ok_or_else(|| {
                Refusal::bad_request("bad Content-Length: it must be one non-negative decimal number")
            })?;
            if length.is_some_and(|previous| previous != value) {
                return Err(Refusal::bad_request("bad Content-Length: the request names differing lengths"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if http10 {
                return Err(Refusal::bad_request("Transfer-Encoding is not allowed in an HTTP/1.0 request"));
            }
            // Only `chunked`, once: any other coding would hand the service bytes it cannot
            // read, and `chunked` twice is a framing hyper and a proxy may disagree on.
            for coding in field.value.split(|&b| b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                codings += 1;
                chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                if !chunked_last {
                    return Err(Refusal::bad_request(format!(
                        "unsupported Transfer-Encoding {}: only chunked is accepted",
                        printable(coding)
                    )));
                }
            }
        }
    }
    match (length, codings) {
        (Some(_), 1..) => {
            // A request framed two ways is the shape of request smuggling: refuse it outright
            // rather than pick one framing, as hyper would.
            Err(Refusal::bad_request("the request has both Content-Length and Transfer-Encoding"))
        }
        (None, 1) if chunked_last => Ok(Framing::Chunked),
        (None, 1..) => Err(Refusal::bad_request("bad Transfer-Encoding: chunked must appear exactly once")),
        // hyper's largest body length is two below u64::MAX; it refuses more with a bare 431.
        (Some(n), _) if n > u64::MAX - 2 => Err(Refusal::bad_request("bad Content-Length: too large")),
        (Some(n), _) => Ok(Framing::Length(n)),
        (None, _) => Ok(Framing::Length(0)),
    }
}

/// The refusal for a head httparse would not parse, with the reason in words.
fn parse_refusal(error: httparse::Error, head: &[u8], method_parsed: bool, limits: &Limits) -> Refusal {
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let request_line = request_line.strip_suffix(b"\r").unwrap_or(request_line);
    match error {
        httparse::Error::Version if names_other_http_version(request_line) => Refusal::version_not_supported(),
        httparse::Error::Version => Refusal::bad_request("malformed request line: bad HTTP version"),
        httparse::Error::Token if !method_parsed => {
            Refusal::bad_request("malformed request line: the method is not a valid token")
        }
        httparse::Error::Token => Refusal::bad_request("malformed request line: bad request target"),
        httparse::Error::TooManyHeaders => {
            Refusal::headers_too_large(format!("more than {} header fields", limits.max_headers))
        }
        httparse::Error::HeaderName | httparse::Error::HeaderValue => Refusal::bad_request(describe_bad_field(head)),
        httparse::Error::NewLine | httparse::Error::Status => {
            Refusal::bad_request("malformed request head: bad line ending")
        }
    }
}

/// Whether a request line that failed on its version names some HTTP version, such as
/// `HTTP/2.0` or `HTTP/3`, rather than something that is not a version at all.
fn names_other_http_version(request_line: &[u8]) -> bool {
    let Some(version) = request_line.rsplit(|&b| b == b' ').next() else { return false };
    let Some(number) = version.strip_prefix(b"HTTP/") else { return false };
    let mut parts = number.splitn(2, |&b| b == b'.');
    let major = parts.next().unwrap_or_default();
    let minor = parts.next();
    !major.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.is_none_or(|m| !m.is_empty() && m.iter().all(u8::is_ascii_digit))
}

/// Finds the first header line with a byte a header may not hold and says which header it is.
fn describe_bad_field(head: &[u8]) -> String {
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            if line.is_empty() {
                continue;
            }
            return format!("malformed header line {}", printable(line));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if http::HeaderName::from_bytes(name).is_err() {
            return format!("invalid header name {}", printable(name));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return format!("control byte in header {}", printable(name));
        }
    }
    "malformed header field".to_owned()
}

/// A short, printable rendering of bytes from the request for a message: at most 64
/// characters, with anything but visible ASCII escaped.
fn printable(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(64)];
    let mut text: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        text.push('…');
    }
    format!("`{text}`")
}

/// One non-negative decimal number, digits only, as hyper reads Content-Length.
fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() { n.checked_mul(10)?.checked_add(u64::from(b - b'0')) } else { None }
    })
}

/// Follows a chunked body byte by byte, with hyper's grammar (`proto/h1/decode.rs`), to find
/// where it ends. It keeps no bytes, only counts, so its memory does not grow with the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunked {
    state: ChunkState,
    /// The chunk size being read, then the bytes of chunk data still to come.
    size: u64,
    /// Bytes of the current chunk-size line so far.
    line: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    max_trailer_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// The first hex digit of a chunk size.
    Start,
    Size,
    /// Whitespace after the size.
    SizeLws,
    Extension,
    /// The LF ending a chunk-size line.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// The start of a line after the last chunk: a trailer field, or the final CRLF.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunked {
    fn new(max_trailer_fields: usize) -> Chunked {
        Chunked { state: ChunkState::Start, size: 0, line: 0, trailer_bytes: 0, trailer_fields: 0, max_trailer_fields }
    }

    /// Takes bytes of the body: how many belong to it, and whether the body is complete. When
    /// it is, the bytes after the count belong to the next request.
    fn feed(&mut self, data: &[u8]) -> Result<(usize, bool), &'static str> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            if self.state == Done {
                break;
            }
            if self.state == Data {
                // Chunk data passes in bulk: only its length matters.
                let take = (data.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                i += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            let b = data[i];
            i += 1;
            // The line limit counts the size, whitespace and extensions, not the line end.
            if matches!(self.state, Start | Size | SizeLws | Extension) && b != b'\r' {
                self.line += 1;
                if self.line > MAX_CHUNK_LINE {
                    return Err("chunk-size line too long");
                }
            }
            self.state = match (self.state, b) {
                (Start, b) => {
                    self.size = u64::from(hex(b).ok_or("chunk-size line does not start with a hex digit")?);
                    Size
                }
                (Size, b) if hex(b).is_some() => {
                    let digit = u64::from(hex(b).unwrap_or_default());
                    self.size =
                        self.size.checked_mul(16).and_then(|s| s.checked_add(digit)).ok_or("chunk size overflows")?;
                    Size
                }
                (Size | SizeLws, b' ' | b'\t') => SizeLws,
                (Size | SizeLws, b';') => Extension,
                (Size | SizeLws | Extension, b'\r') => SizeLf,
                (Size | SizeLws, _) => return Err("invalid byte in chunk-size line"),
                (Extension, b'\n') => return Err("bare LF in a chunk extension"),
                (Extension, _) => Extension,
                (SizeLf, b'\n') => {
                    self.line = 0;
                    if self.size == 0 { TrailerStart } else { Data }
                }
                (SizeLf, _) => return Err("chunk-size line does not end with CRLF"),
                (DataCr, b'\r') => DataLf,
                (DataCr, _) => return Err("chunk data does not end with CRLF"),
                (DataLf, b'\n') => Start,
                (DataLf, _) => return Err("chunk data does not end with CRLF"),
                (TrailerStart, b'\r') => EndLf,
                (TrailerStart | Trailer, b) => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err("trailer fields too large");
                    }
                    if b == b'\r' { TrailerLf } else { Trailer }
                }
                (TrailerLf, b'\n') => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > self.max_trailer_fields {
                        return Err("too many trailer fields");
                    }
                    TrailerStart
                }
                (TrailerLf, _) => return Err("trailer field does not end with CRLF"),
                (EndLf, b'\n') => Done,
                (EndLf, _) => return Err("chunked body does not end with CRLF"),
                // Both are handled before a byte is taken; reaching them here would be a bug in
                // this file, reported as a framing error rather than a panic.
                (Data | Done, _) => return Err("internal chunk framing error"),
            };
        }
        Ok((i, self.state == Done))
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where the wrapper is in the stream of requests.
#[derive(Debug)]
enum Phase {
    /// Reading a request head that starts at `ready`.
    Head(HeadScan),
    /// Passing a body through; `Length(0)` never stays here.
    Length(u64),
    Chunked(Chunked),
    /// Nothing more goes to hyper: a head was refused, a timeout passed, or the client left.
    Closed,
}

/// Progress of the search for the end of a head, so that each byte is looked at once however
/// the head is split across reads. Offsets count from the start of the head.
#[derive(Debug, Default)]
struct HeadScan {
    scanned: usize,
    line_start: usize,
    /// Complete lines so far, the request line included.
    lines: usize,
    /// When the first byte of this head was seen.
    first_byte: Option<Instant>,
}

/// What one look at the buffered bytes found.
enum Step {
    /// More bytes are cleared for hyper.
    Released,
    /// More bytes are needed from the client.
    Wait,
    /// hyper gets end of stream.
    Eof,
}

/// A stream that passes bytes to hyper unchanged, but only the bytes of request heads that
/// passed [`check_head`], and of the bodies they frame. See the module documentation.
pub struct Guarded<S> {
    inner: S,
    limits: Limits,
    /// Bytes read from the client. `buf[pos..ready]` are cleared for hyper, `buf[ready..end]`
    /// are not yet (the start of a head). Never longer than `limits.max_head_bytes`.
    buf: Vec<u8>,
    pos: usize,
    ready: usize,
    end: usize,
    phase: Phase,
    /// No request has been released yet: the first head is due within the header timeout of
    /// the accept.
    first: bool,
    accepted: Instant,
    /// When hyper last wrote (the end of the last response, when waiting for a head): the
    /// idle and header clocks of the next head start here.
    idle_since: Instant,
    body_deadline: Instant,
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    write_stalled: bool,
    /// The answer to write when hyper shuts the stream down, and how much of it is written.
    refusal: Option<Vec<u8>>,
    refusal_sent: usize,
    shut: bool,
    /// The client may still be sending: read and discard for a moment after shutting down.
    linger: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Guarded<S> {
    pub fn new(inner: S, limits: Limits) -> Guarded<S> {
        let now = Instant::now();
        Guarded {
            inner,
            limits,
            buf: Vec::new(),
            pos: 0,
            ready: 0,
            end: 0,
            phase: Phase::Head(HeadScan::default()),
            first: true,
            accepted: now,
            idle_since: now,
            body_deadline: now,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_stalled: false,
            refusal: None,
            refusal_sent: 0,
            shut: false,
            linger: false,
        }
    }

    /// Looks at the bytes not yet cleared for hyper (`pos == ready` here) and moves the
    /// framing forward as far as they allow.
    fn advance(&mut self) -> Step {
        let available = self.end - self.ready;
        match &mut self.phase {
            Phase::Closed => Step::Eof,
            Phase::Length(remaining) => {
                if available == 0 {
                    return Step::Wait;
                }
                let take = available.min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                self.ready += take;
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.phase = Phase::Head(HeadScan::default());
                }
                Step::Released
            }
            Phase::Chunked(chunked) => {
                if available == 0 {
                    return Step::Wait;
                }
                match chunked.feed(&self.buf[self.ready..self.end]) {
                    Ok((0, false)) => {
                        // Every byte moves the tracker on, so this cannot happen; if it did,
                        // looping here would never end.
                        debug!("closing: chunk framing made no progress");
                        self.close_quietly();
                        Step::Eof
                    }
                    Ok((taken, done)) => {
                        self.ready += taken;
                        if done {
                            self.phase = Phase::Head(HeadScan::default());
                        }
                        Step::Released
                    }
                    Err(what) => {
                        // hyper is reading this body; it will see the stream end early and
                        // fail the body. A JSON answer cannot follow a response already begun.
                        debug!(problem = what, "closing: malformed chunked body");
                        self.close_quietly();
                        Step::Eof
                    }
                }
            }
            Phase::Head(_) => self.advance_head(),
        }
    }

    fn advance_head(&mut self) -> Step {
        let mut scan = match &mut self.phase {
            Phase::Head(scan) => std::mem::take(scan),
            _ => return Step::Wait,
        };
        let step = self.scan_head(&mut scan);
        // A head that is still arriving keeps its progress; a released or refused one has
        // already moved the phase on.
        if matches!(step, Step::Wait) {
            self.phase = Phase::Head(scan);
        }
        step
    }

    /// Looks for the end of the head starting at `ready`, refuses it early when it is already
    /// too large, and checks it once complete.
    fn scan_head(&mut self, scan: &mut HeadScan) -> Step {
        // Empty lines before a request line are allowed and skipped (RFC 9112 §2.2); they are
        // dropped here, since `pos == ready`, and never reach hyper.
        if scan.scanned == 0 {
            loop {
                let rest = &self.buf[self.ready..self.end];
                let skip = if rest.starts_with(b"\n") {
                    1
                } else if rest.starts_with(b"\r\n") {
                    2
                } else {
                    break;
                };
                scan.first_byte.get_or_insert_with(Instant::now);
                self.ready += skip;
                self.pos = self.ready;
            }
        }
        if self.ready == self.end {
            return Step::Wait;
        }
        scan.first_byte.get_or_insert_with(Instant::now);
        let (max_uri, max_headers, max_head) =
            (self.limits.max_uri_bytes, self.limits.max_headers, self.limits.max_head_bytes);
        let head = &self.buf[self.ready..self.end];
        let mut complete = None;
        let mut refusal = None;
        for (offset, &b) in head[scan.scanned..].iter().enumerate() {
            if b != b'\n' {
                continue;
            }
            let at = scan.scanned + offset;
            let line = &head[scan.line_start..at];
            if line.is_empty() || line == b"\r" {
                complete = Some(at + 1);
                break;
            }
            scan.lines += 1;
            scan.line_start = at + 1;
            if scan.lines == 1 && request_target_so_far(line) > max_uri {
                refusal = Some(Refusal::uri_too_long(&self.limits));
                break;
            }
            // The request line plus the header lines.
            if scan.lines > max_headers + 1 {
                refusal = Some(Refusal::headers_too_large(format!("more than {max_headers} header fields")));
                break;
            }
        }
        let head_len = head.len();
        if let Some(refusal) = refusal {
            return self.refuse(refusal);
        }
        if let Some(len) = complete {
            return match check_head(&self.buf[self.ready..self.ready + len], &self.limits) {
                Ok(framing) => {
                    self.ready += len;
                    self.first = false;
                    self.body_deadline = Instant::now() + self.limits.body_timeout;
                    self.phase = match framing {
                        Framing::Length(0) => Phase::Head(HeadScan::default()),
                        Framing::Length(n) => Phase::Length(n),
                        Framing::Chunked => Phase::Chunked(Chunked::new(max_headers)),
                    };
                    Step::Released
                }
                Err(refusal) => self.refuse(refusal),
            };
        }
        scan.scanned = head_len;
        // A request line still arriving is refused as soon as its target is too long, without
        // waiting for the rest of it.
        if scan.lines == 0 && request_target_so_far(&self.buf[self.ready..self.end]) > max_uri {
            return self.refuse(Refusal::uri_too_long(&self.limits));
        }
        if head_len >= max_head {
            let refusal = if scan.lines == 0 {
                Refusal::uri_too_long(&self.limits)
            } else {
                Refusal::headers_too_large(format!("the request head is larger than {max_head} bytes"))
            };
            return self.refuse(refusal);
        }
        Step::Wait
    }

    /// Refuses the head being read: hyper gets end of stream, and the answer is written when
    /// hyper shuts the stream down.
    fn refuse(&mut self, refusal: Refusal) -> Step {
        debug!(status = refusal.status, code = refusal.code, message = %refusal.message, "refusing request");
        self.refusal = Some(refusal.response());
        self.close_quietly();
        Step::Eof
    }

    /// hyper gets end of stream from now on; bytes not yet cleared are dropped.
    fn close_quietly(&mut self) {
        // Input is still arriving unless the client itself ended the stream.
        self.linger = true;
        self.end = self.ready;
        self.phase = Phase::Closed;
    }

    /// When the read in progress must be over.
    fn read_deadline(&self) -> Instant {
        match &self.phase {
            Phase::Head(_) if self.first => self.accepted + self.limits.header_timeout,
            Phase::Head(HeadScan { first_byte: Some(first), .. }) => {
                (*first).max(self.idle_since) + self.limits.header_timeout
            }
            Phase::Head(_) => self.idle_since + self.limits.idle_timeout,
            Phase::Length(_) | Phase::Chunked(_) => self.body_deadline,
            // A closed stream ends reads before any deadline is looked at; any instant will do.
            Phase::Closed => self.accepted,
        }
    }

    /// The read deadline passed: answer 408 to a late head, close an idle connection, fail a
    /// late body.
    fn on_read_deadline(&mut self) -> io::Result<()> {
        match &self.phase {
            Phase::Head(scan) if self.first || scan.first_byte.is_some() => {
                self.refuse(Refusal::timeout(&self.limits));
                Ok(())
            }
            Phase::Head(_) => {
                debug!("closing idle connection");
                self.close_quietly();
                self.linger = false;
                Ok(())
            }
            Phase::Length(_) | Phase::Chunked(_) => {
                debug!("closing: request body not received in time");
                self.close_quietly();
                Err(io::Error::new(io::ErrorKind::TimedOut, "request body not received in time"))
            }
            Phase::Closed => Ok(()),
        }
    }

    /// The client ended its side of the stream.
    fn on_client_eof(&mut self) {
        let partial_head = matches!(&self.phase, Phase::Head(scan) if scan.first_byte.is_some());
        if partial_head {
            self.refuse(Refusal::bad_request("the connection ended in the middle of a request head"));
        } else {
            self.close_quietly();
        }
        self.linger = false;
    }

    /// Reads more from the client into the buffer: the number of bytes read, 0 at its end.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // Bytes hyper has taken make room at the front.
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.ready -= self.pos;
            self.pos = 0;
        }
        let max = self.limits.max_head_bytes;
        if self.end == self.buf.len() && self.buf.len() < max {
            let grown = (self.buf.len() * 2).clamp(INITIAL_BUFFER.min(max), max);
            self.buf.resize(grown, 0);
        }
        if self.end == self.buf.len() {
            // `advance_head` refuses a head that fills the buffer and bodies are cleared as
            // they arrive, so this means a bug here; end the connection rather than spin.
            return Poll::Ready(Err(io::Error::other("front door buffer full")));
        }
        let mut room = ReadBuf::new(&mut self.buf[self.end..]);
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut room))?;
        let n = room.filled().len();
        let filled_it = room.remaining() == 0;
        self.end += n;
        // A body arriving fast fills the buffer: let later reads take bigger bites.
        if filled_it && self.buf.len() < max {
            let grown = (self.buf.len() * 2).min(max);
            self.buf.resize(grown, 0);
        }
        Poll::Ready(Ok(n))
    }

    /// Applies the write-stall timeout to one write-side operation of the inner stream.
    fn watch_write<T>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.write_stalled = false;
                self.idle_since = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.write_stalled {
                    self.write_stalled = true;
                    self.write_timer.as_mut().reset(Instant::now() + self.limits.write_timeout);
                }
                match self.write_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        debug!("closing: the client has not read for the write timeout");
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "client stopped reading")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    /// Reads and discards what the client still sends, until it closes or [`LINGER`] passes.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 4096];
        loop {
            // Checked on every round, so that a client that never stops sending cannot keep
            // the connection past the linger time.
            if self.read_timer.is_elapsed() {
                return Poll::Ready(());
            }
            let mut sink = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut sink) {
                Poll::Ready(Ok(())) if !sink.filled().is_empty() => continue,
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return self.read_timer.as_mut().poll(cx),
            }
        }
    }
}

/// The length of the request target in an unfinished request line: what follows the first
/// space, up to the next space or the end of what has arrived.
fn request_target_so_far(line: &[u8]) -> usize {
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(end) => &line[..end],
        None => line,
    };
    let Some(space) = line.iter().position(|&b| b == b' ') else { return 0 };
    let target = &line[space + 1..];
    target.iter().position(|&b| b == b' ').unwrap_or(target.len())
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, dst: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if dst.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.pos < this.ready {
                let n = (this.ready - this.pos).min(dst.remaining());
                dst.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            match this.advance() {
                Step::Released => continue,
                Step::Eof => return Poll::Ready(Ok(())),
                Step::Wait => {}
            }
            let deadline = this.read_deadline();
            if Instant::now() >= deadline {
                // Checked before reading too, so that a client trickling bytes cannot keep a
                // head or body open past its deadline.
                this.on_read_deadline()?;
                continue;
            }
            match this.fill(cx) {
                Poll::Ready(Ok(0)) => this.on_client_eof(),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.close_quietly();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    if this.read_timer.deadline() != deadline {
                        this.read_timer.as_mut().reset(deadline);
                    }
                    if this.read_timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.on_read_deadline()?;
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        this.watch_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, data);
        this.watch_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch_write(cx, result)
    }

    /// hyper calls this when it is done with the connection, after flushing its last
    /// response: the place to write a refusal, then close, then linger.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while let Some(response) = &this.refusal {
            let Some(rest) = response.get(this.refusal_sent..).filter(|rest| !rest.is_empty()) else { break };
            let result = Pin::new(&mut this.inner).poll_write(cx, rest);
            let n = ready!(this.watch_write(cx, result))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.refusal_sent += n;
        }
        if !this.shut {
            let result = Pin::new(&mut this.inner).poll_shutdown(cx);
            ready!(this.watch_write(cx, result))?;
            this.shut = true;
            // hyper also closes in the middle of a request, such as after answering without
            // reading the body: the client may still be sending then too.
            let mid_request = match &this.phase {
                Phase::Length(_) | Phase::Chunked(_) => true,
                Phase::Head(scan) => scan.first_byte.is_some(),
                Phase::Closed => false,
            };
            this.linger |= mid_request;
            if this.linger {
                this.read_timer.as_mut().reset(Instant::now() + LINGER);
            }
        }
        if this.linger {
            ready!(this.poll_linger(cx));
            this.linger = false;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one after another to a fresh tracker: the bytes it took of each piece and
    /// whether the body was complete after it, or the first error.
    fn feed_all(pieces: &[&[u8]], max_trailer_fields: usize) -> Result<Vec<(usize, bool)>, &'static str> {
        let mut chunked = Chunked::new(max_trailer_fields);
        pieces.iter().map(|piece| chunked.feed(piece)).collect()
    }

    #[test]
    fn the_chunked_tracker_finds_where_a_body_ends() {
        let long_size_line = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE));
        let many_trailers = format!("0\r\n{}\r\n", "t: v\r\n".repeat(3));
        let large_trailer = format!("0\r\nt: {}\r\n\r\n", "v".repeat(MAX_TRAILER_BYTES));
        type Case<'a> = (&'a str, Vec<&'a [u8]>, Result<Vec<(usize, bool)>, &'static str>);
        let cases: Vec<Case<'_>> = vec![
            ("one chunk in one piece", vec![b"5\r\nhello\r\n0\r\n\r\n"], Ok(vec![(15, true)])),
            ("the next request is left alone", vec![b"0\r\n\r\nGET / HTTP/1.1\r\n"], Ok(vec![(5, true)])),
            ("upper-case hex size", vec![b"A\r\n0123456789\r\n0\r\n\r\n"], Ok(vec![(20, true)])),
            (
                "a size split across reads",
                vec![b"1", b"0\r", b"\n0123456789abcdef", b"\r\n0\r\n\r\n"],
                Ok(vec![(1, false), (2, false), (17, false), (7, true)]),
            ),
            (
                "every byte in its own read",
                b"3\r\nabc\r\n0\r\n\r\n".chunks(1).collect(),
                Ok((0..13).map(|i| (1, i == 12)).collect()),
            ),
            ("extensions are skipped", vec![b"3;name=value;x\r\nabc\r\n0;last\r\n\r\n"], Ok(vec![(31, true)])),
            ("whitespace after the size", vec![b"3 \t;x\r\nabc\r\n0\r\n\r\n"], Ok(vec![(17, true)])),
            ("trailers are passed", vec![b"0\r\nx-sum: 1\r\nx-more: 2\r\n\r\n"], Ok(vec![(26, true)])),
            (
                "a trailer split across reads",
                vec![b"0\r\nx-su", b"m: 1\r", b"\n\r\n"],
                Ok(vec![(7, false), (5, false), (3, true)]),
            ),
            ("no size digit", vec![b"\r\n"], Err("chunk-size line does not start with a hex digit")),
            ("a non-hex size", vec![b"5g\r\n"], Err("invalid byte in chunk-size line")),
            ("a size that overflows", vec![b"10000000000000000\r\n"], Err("chunk size overflows")),
            ("a bare LF after the size", vec![b"5\n"], Err("invalid byte in chunk-size line")),
            ("a bare LF in an extension", vec![b"5;x\n"], Err("bare LF in a chunk extension")),
            ("data longer than its size", vec![b"2\r\nabc\r\n"], Err("chunk data does not end with CRLF")),
            ("an oversized size line", vec![long_size_line.as_bytes()], Err("chunk-size line too long")),
            ("too many trailers", vec![many_trailers.as_bytes()], Err("too many trailer fields")),
            ("a trailer section too large", vec![large_trailer.as_bytes()], Err("trailer fields too large")),
            ("a bad final line end", vec![b"0\r\n\rx"], Err("chunked body does not end with CRLF")),
        ];
        for (name, pieces, want) in cases {
            assert_eq!(feed_all(&pieces, 2), want, "{name}");
        }
    }

    #[test]
    fn the_chunked_tracker_keeps_a_line_at_the_limit() {
        // Given a size line exactly at the limit, when it is fed, then it passes.
        let line = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_CHUNK_LINE - 2));
        assert_eq!(feed_all(&[line.as_bytes()], 0), Ok(vec![(line.len(), true)]));
    }

    #[test]
    fn heads_are_checked_like_hyper_would_and_stricter() {
        let limits = Limits::default();
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(limits.max_uri_bytes));
        type Case = (&'static str, Vec<u8>, Result<Framing, (u16, &'static str)>);
        let cases: Vec<Case> = vec![
            ("a plain GET", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(), Ok(Framing::Length(0))),
            ("bare LF line ends", b"GET / HTTP/1.0\nhost: x\n\n".to_vec(), Ok(Framing::Length(0))),
            ("a length", b"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n".to_vec(), Ok(Framing::Length(12))),
            (
                "the same length twice",
                b"POST / HTTP/1.1\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n".to_vec(),
                Ok(Framing::Length(5)),
            ),
            ("chunked", b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n".to_vec(), Ok(Framing::Chunked)),
            ("a long target", long_target.into_bytes(), Err((414, "uri_too_long"))),
            ("a bad length", b"POST / HTTP/1.1\r\ncontent-length: abc\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("a signed length", b"POST / HTTP/1.1\r\ncontent-length: +5\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("a listed length", b"POST / HTTP/1.1\r\ncontent-length: 5, 5\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            (
                "a length too large",
                b"POST / HTTP/1.1\r\ncontent-length: 18446744073709551615\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            (
                "differing lengths",
                b"POST / HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            (
                "length and chunked",
                b"POST / HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            (
                "gzip",
                b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            (
                "chunked twice",
                b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            (
                "chunked in HTTP/1.0",
                b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                Err((400, "bad_request")),
            ),
            ("a control byte", b"GET / HTTP/1.1\r\nx-a: b\x01c\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("a bad name", b"GET / HTTP/1.1\r\nx a: b\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("a folded line", b"GET / HTTP/1.1\r\nx-a: b\r\n c\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("no version", b"GET /\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("two spaces", b"GET  / HTTP/1.1\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("a bad target", b"GET /a\x7f HTTP/1.1\r\n\r\n".to_vec(), Err((400, "bad_request"))),
            ("HTTP/2.0", b"GET / HTTP/2.0\r\n\r\n".to_vec(), Err((400, "http_version_not_supported"))),
            ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\n".to_vec(), Err((400, "http_version_not_supported"))),
            ("HTTP/3", b"GET / HTTP/3\r\n\r\n".to_vec(), Err((400, "http_version_not_supported"))),
            ("not a version", b"GET / FTP/1.1\r\n\r\n".to_vec(), Err((400, "bad_request"))),
        ];
        for (name, head, want) in cases {
            let got = check_head(&head, &limits).map_err(|r| (r.status, r.code));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn refusal_messages_say_what_was_wrong() {
        let limits = Limits::default();
        let cases: [(&[u8], &str); 4] = [
            (b"GET / HTTP/1.1\r\nx-ok: 1\r\nx-evil: b\x01c\r\n\r\n", "control byte in header `x-evil`"),
            (b"POST / HTTP/1.1\r\ncontent-length: abc\r\n\r\n", "bad Content-Length"),
            (b"GET /\r\n\r\n", "malformed request line"),
            (b"POST / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n", "both Content-Length"),
        ];
        for (head, want) in cases {
            let refusal = check_head(head, &limits).expect_err("the head is refused");
            assert!(refusal.message.contains(want), "{:?}: {}", head.escape_ascii().to_string(), refusal.message);
        }
    }

    #[test]
    fn a_refusal_is_a_complete_json_response_that_closes() {
        let response = Refusal::headers_too_large("too big \"really\"").response();
        let text = String::from_utf8(response).expect("the response is text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("the body is JSON");
        assert_eq!(json["error"]["code"], "headers_too_large");
        assert_eq!(json["error"]["message"], "too big \"really\"");
    }

    #[tokio::test]
    async fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
        use tokio::io::AsyncWriteExt;
        // Given a stream whose peer never reads, with room for only a few bytes.
        let (server, _client) = tokio::io::duplex(64);
        let limits = Limits { write_timeout: Duration::from_millis(100), ..Limits::default() };
        let mut guarded = Guarded::new(server, limits);
        // When a large response is written.
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(5), guarded.write_all(&[b'x'; 4096])).await;
        // Then the write fails with a timeout soon after the write timeout.
        let error = result.expect("the write gave up before the test's own timeout").expect_err("the write failed");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
    }
}
