//! The events AWS delivers to the functions, built as AWS builds them: API Gateway HTTP API
//! (payload format 2.0) requests and responses, S3 ObjectCreated notifications, SQS batches and
//! the EventBridge scheduled event.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The largest synchronous invocation payload Lambda accepts (request and response alike).
pub const PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// Where an HTTP API lives: what API Gateway puts in the request context and `Host`.
#[derive(Debug, Clone)]
pub struct ApiContext {
    pub api_id: String,
    pub account: String,
    pub region: String,
}

impl ApiContext {
    /// The API's default domain, which API Gateway sends as `Host`.
    pub fn domain(&self) -> String {
        format!("{}.execute-api.{}.amazonaws.com", self.api_id, self.region)
    }
}

/// An HTTP request as a client sends it to the API.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The path as sent (percent-encoded where needed), without the query.
    pub path: String,
    /// Query parameters, in order; encoded into the raw query string with `%20` for spaces.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// API Gateway's id for the request; a random one when `None`.
    pub request_id: Option<String>,
}

impl HttpRequest {
    pub fn new(method: &str, path: &str) -> Self {
        HttpRequest { method: method.to_owned(), path: path.to_owned(), ..Default::default() }
    }
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }
    pub fn delete(path: &str) -> Self {
        Self::new("DELETE", path)
    }
    /// The request with `id` as API Gateway's request id.
    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = Some(id.to_owned());
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }
    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string())
    }
}

/// An HTTP response as API Gateway builds it from the function's answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase; repeated headers joined with `, ` (as payload 2.0 carries them).
    pub headers: BTreeMap<String, String>,
    pub cookies: Vec<String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    /// The body as JSON, or a panic that shows it.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("the {} response is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The route API Gateway picks for `method path` among `routes` (`[method, path template]`),
/// with the path parameters: the match with the most literal segments wins, as in API Gateway.
/// `None` means API Gateway answers 404 itself without invoking anything.
pub fn route<'r>(
    routes: &'r [(String, String)],
    method: &str,
    path: &str,
) -> Option<(&'r str, BTreeMap<String, String>)> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, &str, BTreeMap<String, String>)> = None;
    for (m, template) in routes {
        if !(m.eq_ignore_ascii_case(method) || m.eq_ignore_ascii_case("ANY")) {
            continue;
        }
        let parts: Vec<&str> = template.split('/').collect();
        let mut params = BTreeMap::new();
        let mut literal = 0;
        let mut ok = true;
        for (i, part) in parts.iter().enumerate() {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
                // Greedy: the rest of the path.
                let rest = segments.get(i..).map(|s| s.join("/")).unwrap_or_default();
                ok &= !rest.is_empty();
                params.insert(name.to_owned(), decode(&rest));
                break;
            }
            let Some(seg) = segments.get(i) else {
                ok = false;
                break;
            };
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                ok &= !seg.is_empty();
                params.insert(name.to_owned(), decode(seg));
            } else if part == seg {
                literal += 1;
            } else {
                ok = false;
            }
            if i == parts.len() - 1 && segments.len() != parts.len() {
                ok = false;
            }
        }
        if ok && best.as_ref().is_none_or(|(l, ..)| literal > *l) {
            best = Some((literal, template.as_str(), params));
        }
    }
    best.map(|(_, template, params)| (template, params))
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// What a query value is encoded with: everything but unreserved characters.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Whether API Gateway passes a body of this content type as text rather than base64.
fn is_text(content_type: &str) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/xml"
        || mime == "application/javascript"
        || mime == "application/x-www-form-urlencoded"
}

/// The payload 2.0 event API Gateway sends for `req` on route `route_key`'s template.
pub fn api_gateway_v2(
    api: &ApiContext,
    template: &str,
    path_params: &BTreeMap<String, String>,
    req: &HttpRequest,
) -> Value {
    let now = OffsetDateTime::now_utc();
    let route_key = format!("{} {template}", req.method.to_ascii_uppercase());
    let raw_query = req
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, QUERY), utf8_percent_encode(v, QUERY)))
        .collect::<Vec<_>>()
        .join("&");
    let mut query_params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &req.query {
        query_params.entry(k.clone()).and_modify(|e| *e = format!("{e},{v}")).or_insert_with(|| v.clone());
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (k, v) in &req.headers {
        let k = k.to_ascii_lowercase();
        if k == "cookie" {
            cookies.extend(v.split(';').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()));
            continue;
        }
        headers.entry(k).and_modify(|e| *e = format!("{e},{v}")).or_insert_with(|| v.clone());
    }
    let trace = format!("Root=1-{:08x}-{}", now.unix_timestamp(), random_hex(12));
    for (k, v) in [
        ("host", api.domain()),
        ("x-forwarded-for", "203.0.113.7".to_owned()),
        ("x-forwarded-port", "443".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
        ("x-amzn-trace-id", trace),
    ] {
        headers.insert(k.to_owned(), v);
    }
    if !req.body.is_empty() {
        headers.insert("content-length".into(), req.body.len().to_string());
    }
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let (body, base64) = if req.body.is_empty() {
        (Value::Null, false)
    } else if is_text(&content_type) && std::str::from_utf8(&req.body).is_ok() {
        (Value::String(String::from_utf8_lossy(&req.body).into_owned()), false)
    } else {
        (Value::String(STANDARD.encode(&req.body)), true)
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": req.path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": api.account,
            "apiId": api.api_id,
            "domainName": api.domain(),
            "domainPrefix": api.api_id,
            "http": {
                "method": req.method.to_ascii_uppercase(),
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": req.request_id.clone().unwrap_or_else(|| random_hex(8)),
            "routeKey": route_key,
            "stage": "$default",
            "time": clf_time(now),
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "isBase64Encoded": base64,
    });
    let obj = event.as_object_mut().expect("an object");
    if !body.is_null() {
        obj.insert("body".into(), body);
    }
    if !cookies.is_empty() {
        obj.insert("cookies".into(), json!(cookies));
    }
    if !query_params.is_empty() {
        obj.insert("queryStringParameters".into(), json!(query_params));
    }
    if !path_params.is_empty() {
        obj.insert("pathParameters".into(), json!(path_params));
    }
    event
}

/// The request time as API Gateway writes it (`12/Mar/2020:19:03:58 +0000`).
fn clf_time(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        t.day(),
        MONTHS[t.month() as usize - 1],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Reads a function's payload 2.0 answer as API Gateway does. An answer without `statusCode`
/// is taken as a 200 JSON body; one API Gateway cannot read is its 500.
pub fn read_api_gateway_v2(answer: &Value) -> Result<HttpResponse, String> {
    let Some(obj) = answer.as_object().filter(|o| o.contains_key("statusCode")) else {
        return Ok(HttpResponse {
            status: 200,
            headers: [("content-type".to_owned(), "application/json".to_owned())].into(),
            cookies: Vec::new(),
            body: answer.to_string().into_bytes(),
        });
    };
    let status = obj["statusCode"].as_u64().ok_or_else(|| format!("statusCode is not a number: {answer}"))? as u16;
    let mut headers = BTreeMap::new();
    if let Some(h) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            headers.insert(k.to_ascii_lowercase(), v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        }
    }
    if let Some(h) = obj.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in h {
            let joined = vs.as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
            if let Some(j) = joined.filter(|j| !j.is_empty()) {
                headers.entry(k.to_ascii_lowercase()).or_insert(j);
            }
        }
    }
    let cookies = obj
        .get("cookies")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let base64 = obj.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if base64 => STANDARD.decode(s).map_err(|e| format!("the body is not base64: {e}"))?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => return Err(format!("the body is not a string: {other}")),
    };
    Ok(HttpResponse { status, headers, cookies, body })
}

/// Characters S3 leaves as they are in an event's object key (it URL-encodes the rest, spaces
/// as `+`).
const S3_KEY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// The S3 event notification for one new object, as S3 sends it to a Lambda.
pub struct ObjectCreated<'a> {
    pub region: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: i64,
    pub etag: &'a str,
    /// `ObjectCreated:Put`, `ObjectCreated:Post` (a browser's form), ...
    pub event_name: &'a str,
    /// The notification's configuration id.
    pub configuration_id: &'a str,
    /// Who wrote the object (`AWS:<user id>`).
    pub principal: &'a str,
}

impl ObjectCreated<'_> {
    pub fn event(&self) -> Value {
        let key = utf8_percent_encode(self.key, S3_KEY).to_string().replace("%20", "+");
        json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": rfc3339_millis(OffsetDateTime::now_utc()),
            "eventName": self.event_name,
            "userIdentity": {"principalId": self.principal},
            "requestParameters": {"sourceIPAddress": "203.0.113.7"},
            "responseElements": {"x-amz-request-id": random_hex(8).to_uppercase(), "x-amz-id-2": random_hex(32)},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": self.configuration_id,
                "bucket": {
                    "name": self.bucket,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": format!("arn:aws:s3:::{}", self.bucket),
                },
                "object": {
                    "key": key,
                    "size": self.size,
                    "eTag": self.etag.trim_matches('"'),
                    "sequencer": format!("{:016X}", OffsetDateTime::now_utc().unix_timestamp_nanos() as u64),
                },
            },
        }]})
    }
}

/// One SQS message as a Lambda event source mapping hands it over.
#[derive(Debug, Clone)]
pub struct SqsMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, ...).
    pub attributes: BTreeMap<String, String>,
}

impl SqsMessage {
    pub fn receive_count(&self) -> u32 {
        self.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

/// The SQS event for a batch received from the queue `queue_arn`.
pub fn sqs_event(region: &str, queue_arn: &str, messages: &[SqsMessage]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": m.attributes,
                "messageAttributes": Map::new(),
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({"Records": records})
}

/// The event an EventBridge schedule rule sends.
pub fn scheduled_event(region: &str, account: &str, rule_arn: &str) -> Value {
    let now = OffsetDateTime::now_utc();
    let time = now.replace_nanosecond(0).unwrap_or(now).format(&Rfc3339).unwrap_or_default();
    json!({
        "version": "0",
        "id": uuid(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": time,
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    })
}

fn rfc3339_millis(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source");
    hex::encode(bytes)
}

/// A random version 4 UUID.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// `n` random characters a CloudFormation physical id uses (upper-case letters and digits).
pub fn physical_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source");
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<(String, String)> {
        [("GET", "/v1/links"), ("GET", "/v1/links/{key}"), ("POST", "/v1/links/{key}/images"), ("GET", "/i/{file}")]
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn routes_match_by_method_and_segments() {
        let r = routes();
        assert_eq!(route(&r, "GET", "/v1/links").map(|x| x.0), Some("/v1/links"));
        let (t, p) = route(&r, "GET", "/v1/links/ab%20c").unwrap();
        assert_eq!((t, p["key"].as_str()), ("/v1/links/{key}", "ab c"));
        assert_eq!(route(&r, "POST", "/v1/links/k/images").map(|x| x.0), Some("/v1/links/{key}/images"));
        assert!(route(&r, "POST", "/v1/links").is_none());
        assert!(route(&r, "GET", "/v1/links/k/extra").is_none());
        assert!(route(&r, "GET", "/i/").is_none());
    }

    #[test]
    fn binary_bodies_are_base64_and_text_bodies_are_not() {
        let api =
            ApiContext { api_id: "abc123defg".into(), account: "123456789012".into(), region: "us-east-1".into() };
        let img = HttpRequest::post("/v1/images").body("image/jpeg", vec![0xff, 0xd8, 0xff]);
        let e = api_gateway_v2(&api, "/v1/images", &BTreeMap::new(), &img);
        assert_eq!((e["isBase64Encoded"].as_bool(), e["body"].as_str()), (Some(true), Some("/9j/")));
        let j = HttpRequest::post("/v1/imports").json(&json!({"a": 1})).query("x", "a b");
        let e = api_gateway_v2(&api, "/v1/imports", &BTreeMap::new(), &j);
        assert_eq!((e["isBase64Encoded"].as_bool(), e["body"].as_str()), (Some(false), Some(r#"{"a":1}"#)));
        assert_eq!(e["rawQueryString"], "x=a%20b");
        assert_eq!(e["headers"]["host"], "abc123defg.execute-api.us-east-1.amazonaws.com");
    }

    #[test]
    fn responses_are_read_with_their_encoding() {
        let r = read_api_gateway_v2(
            &json!({"statusCode": 302, "headers": {"Location": "x"}, "body": "AAE=", "isBase64Encoded": true}),
        )
        .unwrap();
        assert_eq!((r.status, r.header("location"), r.body.as_slice()), (302, Some("x"), &[0u8, 1][..]));
    }

    #[test]
    fn s3_keys_are_url_encoded_as_s3_does() {
        let e = ObjectCreated {
            region: "us-east-1",
            bucket: "b",
            key: "incoming/a b+c",
            size: 1,
            etag: "\"e\"",
            event_name: "ObjectCreated:Put",
            configuration_id: "c",
            principal: "AWS:x",
        }
        .event();
        assert_eq!(e["Records"][0]["s3"]["object"]["key"], "incoming/a+b%2Bc");
        assert_eq!(e["Records"][0]["s3"]["object"]["eTag"], "e");
    }
}
