//! Reading what clients send, strictly and once: query strings, JSON bodies and listing cursors.
//! Anything that is not what it claims to be is a 400 that names the part at fault, before any
//! handler sees it; nothing is decoded lossily.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::percent_decode;

use crate::error::{Error, Refusal};
use crate::store::Cursor;

/// The query string's parameters, each decoded to UTF-8 and given at most once. Invalid UTF-8
/// (after percent-decoding) is a 400 `invalid_utf8` naming the parameter; a repeated parameter
/// is a 400 `duplicate_parameter`, since which copy counts would otherwise be a guess.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        parse_query(parts.uri.query().unwrap_or("")).map(Params)
    }
}

/// Decodes `application/x-www-form-urlencoded` text as the URL standard does (`+` is a space,
/// `%XX` a byte), but refuses bytes that are not UTF-8 instead of replacing them.
pub fn parse_query(query: &str) -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| -> Result<String, Vec<u8>> {
            let spaced = s.replace('+', " ");
            let bytes: Vec<u8> = percent_decode(spaced.as_bytes()).collect();
            String::from_utf8(bytes).map_err(|e| e.into_bytes())
        };
        let name = decode(name).map_err(|raw| {
            Error::bad_request(
                "invalid_utf8",
                format!("a parameter name is not valid UTF-8: {:?}", String::from_utf8_lossy(&raw)),
            )
        })?;
        let value = decode(value).map_err(|_| {
            Error::bad_request("invalid_utf8", format!("{}: the value is not valid UTF-8", printable(&name)))
        })?;
        if out.contains_key(&name) {
            return Err(Error::bad_request(
                "duplicate_parameter",
                format!("{}: given more than once", printable(&name)),
            ));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// A name as it can be shown in a message: control characters escaped, at most 64 characters.
fn printable(name: &str) -> String {
    let shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
    if name.chars().count() > 64 { format!("{shown}…") } else { shown }
}

/// Reads a JSON body of at most `limit` bytes into `T`: 413 `request_too_large` when longer,
/// 400 `invalid_utf8` naming the field whose text is not UTF-8, 422 `bad_json` (with `what`
/// saying what was expected) when it does not parse into `T`.
pub async fn json_body<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
    what: &str,
) -> Result<T, Error> {
    let bytes = read_limited(body, limit).await?;
    parse_json(&bytes, what)
}

/// Reads a whole body of at most `limit` bytes, refusing more with 413 `request_too_large`.
pub async fn read_limited(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        Error::client(Refusal::TooLarge, "request_too_large", format!("the request body is longer than {limit} bytes"))
    })
}

/// Parses a JSON body that was read already; see [`json_body`].
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(Error::bad_request("invalid_utf8", invalid_utf8_message(bytes, e.valid_up_to())));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::unprocessable("bad_json", format!("{what}: {e}")))
}

/// Names the JSON field whose string holds the first invalid byte, by decoding the body with the
/// invalid bytes replaced and looking for the first string value (or key) holding a replacement
/// character: the body is valid UTF-8 up to that byte, so nothing before it can hold one.
fn invalid_utf8_message(bytes: &[u8], at: usize) -> String {
    let lossy = String::from_utf8_lossy(bytes);
    let path = serde_json::from_str::<serde_json::Value>(&lossy).ok().and_then(|v| path_to_replacement(&v));
    match path {
        Some(p) if p.is_empty() => "the body is not valid UTF-8".to_owned(),
        Some(p) => format!("{p}: the text is not valid UTF-8"),
        None => format!("the body is not valid UTF-8 (at byte {at})"),
    }
}

fn path_to_replacement(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => s.contains('\u{FFFD}').then(String::new),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| path_to_replacement(item).map(|rest| format!("[{i}]{}", dotted(&rest)))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, item)| {
            if k.contains('\u{FFFD}') {
                return Some("a field name".to_owned());
            }
            path_to_replacement(item).map(|rest| format!("{}{}", printable(k), dotted(&rest)))
        }),
        _ => None,
    }
}

fn dotted(rest: &str) -> String {
    if rest.is_empty() || rest.starts_with('[') { rest.to_owned() } else { format!(".{rest}") }
}

/// A cursor as clients see it: the JSON of the store's cursor, base64url without padding.
pub fn encode_cursor(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

/// Reads a cursor a client sent back. Whether it belongs to the listing it is used with is
/// checked by the store ([`Cursor::check`]); here only its shape.
pub fn decode_cursor(s: &str) -> Option<Cursor> {
    if s.len() > 4096 {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// The `next_cursor` of one page of a listing, as every listing answers it (`{"<items>": [...],
/// "next_cursor": ...}`), in the encoding [`decode_cursor`] reads back; `None` on the last page.
pub fn next_cursor(next: Option<Cursor>) -> Option<String> {
    next.map(|c| encode_cursor(&c))
}

/// The `limit` (1 to 100, default 50) and `cursor` of a paged admin listing.
pub fn page_params(params: &HashMap<String, String>) -> Result<(usize, Option<Cursor>), Error> {
    // An empty `limit=` is no number either: only a missing one means the default.
    let limit = match params.get("limit").map(String::as_str) {
        None => 50,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| Error::unprocessable("bad_limit", "limit must be a whole number from 1 to 100"))?,
    };
    let cursor = match params.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| Error::bad_request("invalid_cursor", "the cursor is not one this listing returned"))?,
        ),
    };
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairs a query decodes to, or the code it is refused with.
    type Want = Result<&'static [(&'static str, &'static str)], &'static str>;

    #[test]
    fn query_strings_decode_strictly() {
        let cases: &[(&str, Want)] = &[
            ("a=1&b=two+words", Ok(&[("a", "1"), ("b", "two words")])),
            ("q=%E2%9C%93", Ok(&[("q", "✓")])),
            ("flag&&x=", Ok(&[("flag", ""), ("x", "")])),
            ("q=%ff", Err("invalid_utf8")),
            ("q=%C3%28", Err("invalid_utf8")),
            ("%ff=1", Err("invalid_utf8")),
            ("a=1&a=2", Err("duplicate_parameter")),
            ("a=1&%61=2", Err("duplicate_parameter")),
        ];
        for (query, want) in cases {
            match (parse_query(query), want) {
                (Ok(got), Ok(pairs)) => {
                    let want: HashMap<String, String> =
                        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                    assert_eq!(got, want, "{query}");
                }
                (Err(e), Err(code)) => {
                    assert_eq!((e.status(), e.code()), (axum::http::StatusCode::BAD_REQUEST, *code), "{query}");
                }
                (got, _) => panic!("{query}: {got:?}"),
            }
        }
        // The parameter at fault is named.
        let e = parse_query("lat=1&query=%ff").unwrap_err();
        assert!(e.public_message().starts_with("query:"), "{}", e.public_message());
    }

    #[test]
    fn invalid_utf8_in_json_names_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (b"{\"name\": \"ab\xff\"}", "name: "),
            (b"{\"urls\": [\"ok\", \"b\xc3\x28\"]}", "urls[1]: "),
            (b"{\"a\": {\"b\": \"\xff\"}}", "a.b: "),
            (b"{\"\xff\": 1}", "a field name: "),
            (b"\xff\xfe", "the body is not valid UTF-8"),
        ];
        for (body, prefix) in cases {
            let e = parse_json::<serde_json::Value>(body, "x").unwrap_err();
            assert_eq!(e.code(), "invalid_utf8");
            assert!(e.public_message().starts_with(prefix), "{:?}: {}", body, e.public_message());
        }
        assert_eq!(parse_json::<serde_json::Value>(b"{\"a\": 1", "x").unwrap_err().code(), "bad_json");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c =
            Cursor { pk: "IMG#a".into(), sk: "META".into(), gsi1pk: Some("IMAGES".into()), gsi1sk: Some("t#a".into()) };
        assert_eq!(decode_cursor(&encode_cursor(&c)), Some(c));
        for garbage in ["!!!", "e30", &"A".repeat(5000)] {
            assert_eq!(decode_cursor(garbage), None, "{garbage}");
        }
        let params = HashMap::from([("cursor".to_owned(), "e30".to_owned())]);
        assert_eq!(page_params(&params).unwrap_err().code(), "invalid_cursor");
    }
}
