//! Fetching a user-supplied URL without letting the user aim us at anything but the public
//! internet (server-side request forgery).
//!
//! # The rules
//! - Only `http` and `https`, no user-info, no proxy (environment proxies are ignored).
//! - Every address a connection goes to is public ([`is_public`]). Names are resolved by our
//!   own resolver, which refuses a name when *any* of its addresses is not public and hands the
//!   HTTP client only the addresses it checked, so a second, different DNS answer (rebinding)
//!   is never asked for. IP literals, which never reach a resolver, are checked before the
//!   request; the `url` crate has already turned every IPv4 spelling (decimal `2130706433`,
//!   octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`) into a plain address by then.
//! - Redirects are followed by hand, at most [`Limits::max_redirects`], each hop checked anew.
//! - Connect and response headers within 10 s, the body within 60 s with no 10 s silence, and at
//!   most 50 MiB, counted while streaming (a lying `Content-Length` does not help).
//!
//! The public-address rule is relaxed only by code: [`Fetcher::allowing`] lets the tests name the
//! exact loopback socket of their own server. No configuration, environment variable or request
//! field reaches it.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, USER_AGENT};
use tracing::{debug, instrument};
use url::{Host, Url};

/// Limits of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To connect and receive the response headers, per hop.
    pub respond: Duration,
    /// The longest silence while reading the body.
    pub idle: Duration,
    /// To read the whole body.
    pub body: Duration,
    pub max_bytes: u64,
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            respond: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            body: Duration::from_secs(60),
            max_bytes: 50 * 1024 * 1024,
            max_redirects: 3,
        }
    }
}

/// Why a fetch failed. [`FetchError::is_transient`] tells a retry apart from a final answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the URL is not acceptable: {0}")]
    BadUrl(String),
    #[error("the address {0} is not a public internet address")]
    Forbidden(String),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("the response is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the server did not answer in time")]
    Timeout,
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("the server answered HTTP {0}")]
    Status(u16),
}

impl FetchError {
    /// A stable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Forbidden(_) => "forbidden_address",
            FetchError::TooManyRedirects(_) => "too_many_redirects",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Timeout => "timeout",
            FetchError::Connect(_) => "connect_failed",
            FetchError::Status(_) => "http_error",
        }
    }

    /// Worth trying again later: the network or the server may recover. A 4xx (but 429), a
    /// forbidden address or an oversized body will not change by waiting.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout | FetchError::Connect(_) => true,
            FetchError::Status(s) => *s == 429 || *s >= 500,
            _ => false,
        }
    }
}

/// A fetched body, with its share of the upload memory budget (held until this is dropped).
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Bytes,
    pub reservation: crate::budget::BodyPermit,
    /// Where the body came from, after redirects.
    pub url: Url,
    pub content_type: Option<String>,
}

/// Fetches public URLs. Cheap to clone; holds one connection pool.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: Limits,
    /// Literal socket addresses allowed although not public (tests only; see module docs).
    allowed: Arc<Vec<SocketAddr>>,
    resolver: Arc<dyn Resolve>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("limits", &self.limits).field("allowed", &self.allowed).finish()
    }
}

impl Fetcher {
    /// The production fetcher: public addresses only, default limits.
    pub fn public() -> Self {
        Self::build(Limits::default(), Vec::new(), Arc::new(SystemResolver))
    }

    /// A fetcher that may also connect to these exact literal socket addresses (a test's own
    /// loopback server). Everything else is checked as usual, names included.
    pub fn allowing(allowed: Vec<SocketAddr>) -> Self {
        Self::build(Limits::default(), allowed, Arc::new(SystemResolver))
    }

    /// The same fetcher with other limits (tests use short timeouts).
    pub fn with_limits(self, limits: Limits) -> Self {
        Self::build(limits, self.allowed.to_vec(), self.resolver)
    }

    /// The same fetcher resolving names with `resolver` instead of the system's, whose answers
    /// are checked like any other (tests use it to play a hostile DNS server).
    pub fn with_resolver(self, resolver: Arc<dyn Resolve>) -> Self {
        Self::build(self.limits, self.allowed.to_vec(), resolver)
    }

    fn build(limits: Limits, allowed: Vec<SocketAddr>, resolver: Arc<dyn Resolve>) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.respond)
            .dns_resolver(Arc::new(CheckingResolver(resolver.clone())))
            .build()
            // Building fails only when the TLS backend cannot initialise, which is a broken
            // build, not a runtime condition.
            .expect("the HTTP client builds");
        Fetcher { client, limits, allowed: Arc::new(allowed), resolver }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Fetches `url`, following redirects, under every rule in the module docs.
    #[instrument(skip(self), fields(url = %redact(url)))]
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let mut url = check_url(url)?;
        for hop in 0..=self.limits.max_redirects {
            self.check_literal(&url)?;
            let request = self
                .client
                .get(url.clone())
                .header(USER_AGENT, concat!("imghost-import/", env!("CARGO_PKG_VERSION")))
                .header(ACCEPT, "image/*");
            let response = match tokio::time::timeout(self.limits.respond, request.send()).await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(Err(e)) => return Err(classify(&e)),
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            if status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| FetchError::BadUrl(format!("HTTP {status} without a usable Location")))?;
                let next = url.join(location).map_err(|e| FetchError::BadUrl(format!("bad redirect: {e}")))?;
                debug!(hop, to = %redact(next.as_str()), "redirect");
                url = check_url(next.as_str())?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let (bytes, reservation) = self.read_body(response).await?;
            return Ok(Fetched { bytes, reservation, url, content_type });
        }
        Err(FetchError::TooManyRedirects(self.limits.max_redirects))
    }

    /// Reads the body under the size and time limits. Before reading, it reserves room in the
    /// upload memory budget for the body and the stripped copy ingest makes: twice the declared
    /// length, or three times the limit when none is declared (the buffer may then grow by
    /// doubling).
    async fn read_body(
        &self,
        mut response: reqwest::Response,
    ) -> Result<(Bytes, crate::budget::BodyPermit), FetchError> {
        let max = self.limits.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(FetchError::TooLarge(max));
        }
        let declared = response.content_length().map(|n| n as usize);
        let reservation = crate::budget::reserve(declared.map_or(3 * max as usize, |n| 2 * n)).await;
        let deadline = tokio::time::Instant::now() + self.limits.body;
        let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
        loop {
            let chunk =
                tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + self.limits.idle), response.chunk());
            match chunk.await {
                Err(_) => return Err(FetchError::Timeout),
                Ok(Err(e)) => return Err(classify(&e)),
                Ok(Ok(None)) => return Ok((body.freeze(), reservation)),
                Ok(Ok(Some(c))) => {
                    // A server that sends more than it declared gets no more memory than it
                    // declared.
                    let cap = declared.map_or(max, |n| n as u64);
                    if body.len() as u64 + c.len() as u64 > cap {
                        return Err(FetchError::TooLarge(max));
                    }
                    body.extend_from_slice(&c);
                }
            }
        }
    }

    /// Checks a literal IP host, which reqwest connects to without asking the resolver.
    pub(crate) fn check_literal(&self, url: &Url) -> Result<(), FetchError> {
        let ip = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(FetchError::BadUrl("no host".into())),
        };
        let port = url.port_or_known_default().unwrap_or(0);
        if is_public(ip) || self.allowed.contains(&SocketAddr::new(ip, port)) {
            Ok(())
        } else {
            Err(FetchError::Forbidden(ip.to_string()))
        }
    }
}

/// Parses and checks the parts of a URL that do not need the network.
pub fn check_url(input: &str) -> Result<Url, FetchError> {
    if input.len() > 2048 {
        return Err(FetchError::BadUrl("longer than 2048 characters".into()));
    }
    let url = Url::parse(input).map_err(|e| FetchError::BadUrl(e.to_string()))?;
    // The limit holds for the URL as it is requested too: percent-encoding can triple the
    // length of what was given (found by the `import_url` fuzz target).
    if url.as_str().len() > 2048 {
        return Err(FetchError::BadUrl("longer than 2048 characters once percent-encoded".into()));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::BadUrl(format!("scheme {:?} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FetchError::BadUrl("credentials in the URL are not allowed".into()));
    }
    match url.host() {
        None => Err(FetchError::BadUrl("no host".into())),
        Some(Host::Domain("")) => Err(FetchError::BadUrl("no host".into())),
        Some(_) => Ok(url),
    }
}

/// The URL without its query, for logs: queries often carry signatures or tokens.
fn redact(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Maps a client error to ours, finding a refusal by [`CheckingResolver`] in the source chain.
fn classify(e: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(f) = s.downcast_ref::<ForbiddenName>() {
            return FetchError::Forbidden(f.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError::Timeout
    } else {
        // Connect, TLS and protocol errors alike: the peer may behave on a later try.
        let mut msg = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        FetchError::Connect(msg)
    }
}

/// A refusal from the resolver, carried through reqwest's error chain.
#[derive(Debug)]
struct ForbiddenName(String);

impl std::fmt::Display for ForbiddenName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "resolves to a non-public address: {}", self.0)
    }
}
impl StdError for ForbiddenName {}

/// Resolves with the inner resolver, then refuses the name unless every address is public.
/// Refusing on any bad address (rather than dropping it) means a name that mixes a public and a
/// private address cannot be used to probe the private one.
struct CheckingResolver(Arc<dyn Resolve>);

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let inner = self.0.resolve(name);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = inner.await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(ForbiddenName(format!("{host} -> {}", bad.ip()))) as _);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The operating system's resolver (getaddrinfo), as reqwest's default would use.
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is an ordinary public unicast address: not loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, documentation, benchmarking, reserved,
/// or an IPv6 form that embeds or translates to IPv4 (mapped, compatible, NAT64, 6to4, Teredo).
/// IPv6 is checked by allowlist: only global unicast `2000::/3`, minus its special blocks.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const BLOCKED: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", including 0.0.0.0
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, including cloud metadata endpoints
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
        ([192, 31, 196, 0], 24), // AS112
        ([192, 52, 193, 0], 24), // AMT
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast
        ([192, 168, 0, 0], 16),  // private
        ([192, 175, 48, 0], 24), // direct delegation AS112
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
        ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, including 255.255.255.255
    ];
    !BLOCKED.iter().any(|(net, bits)| in_v4(ip, *net, *bits))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], bits: u32) -> bool {
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    const BLOCKED: &[([u16; 8], u32)] = &[
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),     // IETF protocol assignments, incl. Teredo
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16),     // 6to4: embeds an IPv4 address
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),     // documentation (RFC 9637)
    ];
    // Everything outside 2000::/3 (loopback, unspecified, mapped, compatible, NAT64 64:ff9b::/96,
    // discard 100::/64, unique local fc00::/7, link-local fe80::/10, multicast ff00::/8) is out.
    in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) && !BLOCKED.iter().any(|(net, bits)| in_v6(ip, *net, *bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        let cases: &[(&str, bool)] = &[
            ("93.184.216.34", true),
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("100.128.0.1", true),
            ("127.0.0.1", false),
            ("127.255.255.255", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            ("2606:4700:4700::1111", true),
            ("2a00:1450:4001:81c::200e", true),
            ("::", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", false),
            ("::127.0.0.1", false),
            ("64:ff9b::7f00:1", false),
            ("100::1", false),
            ("2001::1", false),
            ("2001:db8::1", false),
            ("2002:7f00:1::1", false),
            ("3fff::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public(ip.parse().unwrap()), *public, "{ip}");
        }
    }

    #[test]
    fn url_checks() {
        let cases: &[(&str, Option<&str>)] = &[
            ("https://example.com/a.jpg", None),
            ("http://example.com:8080/a.jpg?x=1", None),
            ("ftp://example.com/a.jpg", Some("scheme")),
            ("file:///etc/passwd", Some("scheme")),
            ("gopher://example.com/", Some("scheme")),
            ("https://user:pass@example.com/a.jpg", Some("credentials")),
            ("https://user@example.com/a.jpg", Some("credentials")),
            ("not a url", Some("relative URL")),
            ("https://", Some("empty host")),
        ];
        for (url, want) in cases {
            match (check_url(url), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{url}: {e}"),
                (got, _) => panic!("{url}: {got:?}"),
            }
        }
        assert!(check_url(&format!("https://example.com/{}", "a".repeat(2100))).is_err());
    }

    #[test]
    fn every_ipv4_spelling_is_one_address() {
        // The WHATWG parser behind `url` normalises these before any check runs.
        for spelling in ["2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "0x7f.1", "127.1", "127.0.0.1."] {
            let url = check_url(&format!("http://{spelling}/")).unwrap();
            assert_eq!(url.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{spelling}");
        }
    }

    #[test]
    fn transient_and_final_errors() {
        assert!(FetchError::Timeout.is_transient());
        assert!(FetchError::Connect("refused".into()).is_transient());
        assert!(FetchError::Status(503).is_transient() && FetchError::Status(429).is_transient());
        assert!(!FetchError::Status(404).is_transient() && !FetchError::Status(403).is_transient());
        assert!(!FetchError::Forbidden("127.0.0.1".into()).is_transient());
        assert!(!FetchError::TooLarge(1).is_transient());
    }

    #[test]
    fn default_limits_are_the_documented_ones() {
        let l = Limits::default();
        assert_eq!((l.respond, l.max_bytes, l.max_redirects), (Duration::from_secs(10), 50 << 20, 3));
    }
}
