//! The HTTP front door, over raw TCP: requests hyper or we refuse get a JSON error and a closed
//! connection; good requests keep working on keep-alive and pipelined connections, chunked
//! bodies included; slow, idle and excess connections are dealt with.

mod common;

use std::time::Duration;

use common::Server;
use imghost_local::front::Limits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A route that answers 200 without credentials.
const GOOD: &[u8] = b"GET /v1/sharex.sxcu HTTP/1.1\r\nhost: imghost.test\r\n\r\n";

/// How long a test waits for something that should happen well before.
const PATIENCE: Duration = Duration::from_secs(5);

/// One response read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts this is the platform's JSON error with `status` and `code`; returns the message.
    fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let json: Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"));
        assert_eq!(json["error"]["code"], code, "{json}");
        let message = json["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "{json}");
        message
    }
}

/// A client speaking HTTP/1.1 by hand.
struct Raw {
    stream: TcpStream,
    /// Bytes read past the last response.
    unread: Vec<u8>,
}

impl Raw {
    async fn connect(server: &Server) -> Raw {
        let addr = server.base.trim_start_matches("http://");
        Raw { stream: TcpStream::connect(addr).await.unwrap(), unread: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; `false` at the end of the stream (a reset counts as an end).
    async fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.unread.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response with a Content-Length body, or `None` if the connection ends first.
    async fn try_response(&mut self) -> Option<Answer> {
        loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(head_len) = response.parse(&self.unread).expect("a valid response head") {
                let status = response.code.expect("a status");
                let headers: Vec<(String, String)> = response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map(|(_, v)| v.parse().expect("a numeric content-length"))
                    .expect("responses in these tests have a content-length");
                while self.unread.len() < head_len + length {
                    if !self.read_more().await {
                        panic!("the connection ended inside a response body");
                    }
                }
                let body = self.unread[head_len..head_len + length].to_vec();
                self.unread.drain(..head_len + length);
                return Some(Answer { status, headers, body });
            }
            if !self.read_more().await {
                assert!(self.unread.is_empty(), "the connection ended inside a response head");
                return None;
            }
        }
    }

    /// The next response, which must arrive within [`PATIENCE`].
    async fn response(&mut self) -> Answer {
        tokio::time::timeout(PATIENCE, self.try_response())
            .await
            .expect("a response in time")
            .expect("a response before the connection ends")
    }

    /// Asserts the server closes the connection within [`PATIENCE`] without sending more.
    async fn assert_closed(&mut self) {
        let more = tokio::time::timeout(PATIENCE, self.read_more()).await.expect("the connection closes in time");
        assert!(!more, "expected the connection to close, got {:?}", String::from_utf8_lossy(&self.unread));
    }
}

/// A small PNG of `width` × `height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 15) as u8, (y * 25) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    pixels.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_routing_get_a_json_error_and_a_closed_connection() {
    let server = Server::start().await;
    let many_headers: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "a 9 KiB request target",
            format!("GET /{} HTTP/1.1\r\nhost: t\r\n\r\n", "a".repeat(9 * 1024)).into_bytes(),
            414,
            "uri_too_long",
            "longer than 8192 bytes",
        ),
        (
            "a 40 KiB request line that never ends",
            format!("GET /{}", "a".repeat(40 * 1024)).into_bytes(),
            414,
            "uri_too_long",
            "request target",
        ),
        (
            "200 header fields",
            format!("GET / HTTP/1.1\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
            "more than 100 header fields",
        ),
        (
            "one 40 KiB header",
            format!("GET / HTTP/1.1\r\nx-big: {}\r\n\r\n", "b".repeat(40 * 1024)).into_bytes(),
            431,
            "headers_too_large",
            "larger than 32768 bytes",
        ),
        (
            "a Content-Length that is not a number",
            b"POST /v1/images HTTP/1.1\r\nhost: t\r\ncontent-length: abc\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "bad Content-Length",
        ),
        (
            "a negative Content-Length",
            b"POST /v1/images HTTP/1.1\r\nhost: t\r\ncontent-length: -1\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "bad Content-Length",
        ),
        (
            "two differing Content-Lengths",
            b"POST /v1/images HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!".to_vec(),
            400,
            "bad_request",
            "differing lengths",
        ),
        (
            "Content-Length with chunked",
            b"POST /v1/images HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
            "bad_request",
            "both Content-Length and Transfer-Encoding",
        ),
        (
            "a transfer coding other than chunked",
            b"POST /v1/images HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "Transfer-Encoding `gzip`",
        ),
        (
            "a control byte in a header value",
            b"GET / HTTP/1.1\r\nhost: t\r\nx-note: a\x01b\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "control byte in header `x-note`",
        ),
        (
            "a request line without a version",
            b"GET /index.html\r\nhost: t\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "malformed request line",
        ),
        (
            "a request line that is not HTTP",
            b"hello there, server\r\n\r\n".to_vec(),
            400,
            "bad_request",
            "malformed request line",
        ),
        (
            "HTTP/2.0 in the request line",
            b"GET / HTTP/2.0\r\nhost: t\r\n\r\n".to_vec(),
            400,
            "http_version_not_supported",
            "HTTP/1.1",
        ),
        (
            "the HTTP/2 connection preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            400,
            "http_version_not_supported",
            "HTTP/1.1",
        ),
    ];
    for (name, request, status, code, says) in cases {
        // Given a fresh connection, when the request is sent,
        let mut client = Raw::connect(&server).await;
        client.send(&request).await;
        // then the answer is the JSON error, saying what was wrong,
        let answer = client.response().await;
        let message = answer.assert_error(status, code);
        assert!(message.contains(says), "{name}: {message:?} should mention {says:?}");
        assert_eq!(answer.header("connection"), Some("close"), "{name}");
        // and the connection closes.
        client.assert_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_requests_on_one_connection_are_all_answered() {
    // Given a connection that has had one request answered,
    let server = Server::start().await;
    let mut client = Raw::connect(&server).await;
    client.send(GOOD).await;
    let first = client.response().await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_ne!(first.header("connection"), Some("close"));
    // when a second request follows on it after a pause,
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.send(GOOD).await;
    // then it is answered the same.
    let second = client.response().await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.body, first.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_until_a_bad_one() {
    let server = Server::start().await;
    let bad: &[u8] = b"GET / HTTP/1.1\r\nhost: t\r\ncontent-length: abc\r\n\r\n";
    // The requests, and the status (with the error code for errors) of each answer expected.
    type Case = (&'static str, Vec<&'static [u8]>, Vec<(u16, &'static str)>);
    let cases: Vec<Case> = vec![
        ("good then bad", vec![GOOD, bad], vec![(200, ""), (400, "bad_request")]),
        ("two good then bad", vec![GOOD, GOOD, bad], vec![(200, ""), (200, ""), (400, "bad_request")]),
        ("bad then good", vec![bad, GOOD], vec![(400, "bad_request")]),
    ];
    for (name, requests, expected) in cases {
        // Given requests written back to back in one write,
        let mut client = Raw::connect(&server).await;
        client.send(&requests.concat()).await;
        // then each is answered in order, a bad one with its JSON error and nothing after it,
        for (status, code) in expected {
            let answer = client.response().await;
            if code.is_empty() {
                assert_eq!(answer.status, status, "{name}: {answer:?}");
            } else {
                answer.assert_error(status, code);
            }
        }
        // and the connection closes.
        client.assert_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_is_passed_through_and_the_connection_stays_usable() {
    // Given a PNG sent as a chunked body in uneven chunks, with an extension and a trailer,
    // followed in the same write by another request,
    let server = Server::start().await;
    let image = png(17, 9);
    let mut request = b"POST /v1/images HTTP/1.1\r\nhost: imghost.test\r\ncontent-type: image/png\r\n\
                        transfer-encoding: chunked\r\n\r\n"
        .to_vec();
    for (i, chunk) in image.chunks(37).enumerate() {
        let extension = if i == 1 { ";note=\"second\"" } else { "" };
        request.extend_from_slice(format!("{:X}{extension}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\nx-checksum: none\r\n\r\n");
    request.extend_from_slice(GOOD);
    let mut client = Raw::connect(&server).await;
    // when it is sent in small pieces,
    for piece in request.chunks(100) {
        client.send(piece).await;
    }
    // then the upload sees the whole image,
    let uploaded = client.response().await;
    assert_eq!(uploaded.status, 201, "{uploaded:?}");
    let json: Value = serde_json::from_slice(&uploaded.body).unwrap();
    assert_eq!((json["width"].as_u64(), json["height"].as_u64()), (Some(17), Some(9)), "{json}");
    // and the request after it is answered too.
    let next = client.response().await;
    assert_eq!(next.status, 200, "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_does_not_arrive_in_time_gets_408() {
    let timeout = Duration::from_millis(300);
    let server = Server::start_with_limits(Limits { header_timeout: timeout, ..Limits::default() }).await;
    let cases: [(&str, &[u8]); 3] = [
        ("half a head, then nothing", b"GET /v1/sharex.sxcu HTTP/1.1\r\nhost: t\r\n"),
        ("nothing at all after connecting", b""),
        ("leading empty lines only", b"\r\n\r\n"),
    ];
    for (name, sent) in cases {
        // Given a client that sends this and then stalls,
        let started = Instant::now();
        let mut client = Raw::connect(&server).await;
        client.send(sent).await;
        // then it is answered 408 once the header timeout has passed, not before,
        let answer = client.response().await;
        let waited = started.elapsed();
        answer.assert_error(408, "request_timeout");
        assert!(waited >= timeout, "{name}: answered after {waited:?}");
        assert!(waited < timeout * 10, "{name}: answered after {waited:?}");
        // and the connection closes.
        client.assert_closed().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_trickled_past_the_timeout_gets_408() {
    // Given a client that keeps sending one byte of a header every 20 ms,
    let timeout = Duration::from_millis(300);
    let server = Server::start_with_limits(Limits { header_timeout: timeout, ..Limits::default() }).await;
    // The server's clock starts when it accepts the connection, so the test's starts before.
    let started = Instant::now();
    let client = Raw::connect(&server).await;
    let (mut reader, mut writer) = client.stream.into_split();
    let trickle = tokio::spawn(async move {
        let _ = writer.write_all(b"GET / HTTP/1.1\r\nx-slow: ").await;
        while writer.write_all(b"z").await.is_ok() && started.elapsed() < PATIENCE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // then the server answers 408 at the header timeout even though bytes keep arriving.
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, reader.read_to_end(&mut received)).await;
    let waited = started.elapsed();
    trickle.abort();
    assert!(read.is_ok(), "the connection stayed open");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(waited >= timeout && waited < timeout * 10, "answered after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(400);
    let server = Server::start_with_limits(Limits { idle_timeout: idle, ..Limits::default() }).await;
    // Given a connection that has had a request answered,
    let mut client = Raw::connect(&server).await;
    client.send(GOOD).await;
    assert_eq!(client.response().await.status, 200);
    // when the next one comes within the idle timeout, then it is served,
    tokio::time::sleep(idle / 4).await;
    client.send(GOOD).await;
    assert_eq!(client.response().await.status, 200);
    // and when none comes, then the server closes the connection after the idle timeout,
    // without a word.
    let started = Instant::now();
    client.assert_closed().await;
    let waited = started.elapsed();
    assert!(waited >= idle * 3 / 4 && waited < idle * 10, "closed after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_ends_the_connection() {
    // Given a client that sends a head announcing 1000 bytes, sends 10 and stalls,
    let body_timeout = Duration::from_millis(300);
    let server = Server::start_with_limits(Limits { body_timeout, ..Limits::default() }).await;
    let mut client = Raw::connect(&server).await;
    let started = Instant::now();
    client
        .send(b"POST /v1/images HTTP/1.1\r\nhost: t\r\ncontent-type: image/png\r\ncontent-length: 1000\r\n\r\n")
        .await;
    client.send(&[0u8; 10]).await;
    // then the connection ends after the body timeout, with no success answer.
    let answer = tokio::time::timeout(PATIENCE, client.try_response()).await.expect("the connection ends in time");
    if let Some(answer) = answer {
        assert!(answer.status >= 400, "{answer:?}");
        client.assert_closed().await;
    }
    let waited = started.elapsed();
    assert!(waited >= body_timeout && waited < body_timeout * 10, "ended after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    // Given a server capped at two connections, both in use,
    let server = Server::start_with_limits(Limits { max_connections: 2, ..Limits::default() }).await;
    let mut first = Raw::connect(&server).await;
    let mut second = Raw::connect(&server).await;
    for client in [&mut first, &mut second] {
        client.send(GOOD).await;
        assert_eq!(client.response().await.status, 200);
    }
    // when a third connects and sends a request,
    let mut third = Raw::connect(&server).await;
    third.send(GOOD).await;
    // then it is not served while the others stay open,
    let early = tokio::time::timeout(Duration::from_millis(500), third.try_response()).await;
    assert!(early.is_err(), "the third connection was served at the cap: {early:?}");
    // and it is served once one of them closes.
    drop(first);
    assert_eq!(third.response().await.status, 200);
    // The remaining one still works.
    second.send(GOOD).await;
    assert_eq!(second.response().await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_while_other_clients_are_served() {
    // Given two hundred connections that each send half a request head and then nothing,
    let timeout = Duration::from_millis(500);
    let server = Server::start_with_limits(Limits { header_timeout: timeout, ..Limits::default() }).await;
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut client = Raw::connect(&server).await;
        client.send(b"GET /v1/sharex.sxcu HTTP/1.1\r\nhost: t\r\n").await;
        stalled.push(client);
    }

    // when other clients come meanwhile, then each is served at once,
    let mut served = 0;
    while started.elapsed() < timeout / 2 {
        let mut client = Raw::connect(&server).await;
        client.send(GOOD).await;
        assert_eq!(client.response().await.status, 200);
        served += 1;
    }
    assert!(served > 0);

    // and every stalled connection is answered 408 and closed once its head timeout passes.
    let closed = futures::future::join_all(stalled.iter_mut().map(|client| async move {
        let answer = tokio::time::timeout(PATIENCE, client.response()).await.expect("answered in time");
        answer.assert_error(408, "request_timeout");
        client.assert_closed().await;
    }));
    closed.await;
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < PATIENCE, "closed after {waited:?}");
}
