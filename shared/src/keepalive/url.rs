//! Imgur keep-alive: stored Imgur URLs viewed on a fixed schedule.
//!
//! This module holds the rule everything else rests on: which URLs may be kept alive at all.
//! Only real Imgur image, album and gallery addresses pass, in one canonical spelling, so the
//! service can never be pointed at another host, and one image cannot be stored twice under
//! different spellings to be loaded more often.

use crate::error::{Error, Result};

/// The only hosts the loader will ever contact.
pub const IMGUR_HOSTS: [&str; 3] = ["imgur.com", "i.imgur.com", "m.imgur.com"];
/// File extensions of direct image links on `i.imgur.com`.
const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "gif", "gifv", "mp4", "webp"];
/// Longest input considered; Imgur URLs are about 35 characters.
const MAX_INPUT: usize = 256;

/// Whether `id` has the shape of an Imgur id: 5 or 7 characters of `[A-Za-z0-9]`.
fn is_imgur_id(id: &str) -> bool {
    matches!(id.len(), 5 | 7) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks an Imgur URL and returns its canonical form: `https`, lowercase host, the path as
/// Imgur shapes it, no port, user-info, query or fragment.
///
/// The input is read as text rather than through a URL parser on purpose: a parser normalises
/// (percent-decoding, dot segments, IDNA, default ports, IPv4 spellings), and every
/// normalisation is a way to make a look-alike pass. Here the authority must *be* one of the
/// three host names, and the path must *be* one of Imgur's shapes, character for character.
pub fn canonical_imgur_url(input: &str) -> Result<String> {
    let bad = |why: &str| Error::unprocessable("not_imgur", format!("not an Imgur image URL: {why}"));
    let input = input.trim();
    if input.len() > MAX_INPUT {
        return Err(bad("too long"));
    }
    if !input.is_ascii() || input.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'\\' || b == b'%') {
        return Err(bad("it holds characters an Imgur URL never has (non-ASCII, spaces, backslashes or %-escapes)"));
    }
    let lower = input.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &input[8..]
    } else if lower.starts_with("http://") {
        &input[7..]
    } else {
        return Err(bad("only http and https URLs"));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let host = authority.to_ascii_lowercase();
    let Some(host) = IMGUR_HOSTS.into_iter().find(|h| *h == host) else {
        return Err(bad("the host must be exactly imgur.com, i.imgur.com or m.imgur.com, without port or user"));
    };
    // The query and fragment are dropped: Imgur serves the same image without them.
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
    let shape = match (host, segments.as_slice()) {
        ("i.imgur.com", [file]) => {
            let (id, ext) = file.split_once('.').ok_or_else(|| bad("a direct link needs an extension"))?;
            let ext = ext.to_ascii_lowercase();
            if !is_imgur_id(id) || !EXTENSIONS.contains(&ext.as_str()) {
                return Err(bad("a direct link is /{id}.{jpg|jpeg|png|gif|gifv|mp4|webp}"));
            }
            format!("/{id}.{ext}")
        }
        (_, [id]) if host != "i.imgur.com" && is_imgur_id(id) => format!("/{id}"),
        (_, [kind @ ("a" | "gallery"), id]) if host != "i.imgur.com" && is_imgur_id(id) => format!("/{kind}/{id}"),
        _ => return Err(bad("the path must be /{id}, /a/{id}, /gallery/{id}, or /{id}.{ext} on i.imgur.com")),
    };
    Ok(format!("https://{host}{shape}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imgur_shapes_are_accepted_in_one_canonical_spelling() {
        let cases = [
            ("https://imgur.com/AbC12xY", "https://imgur.com/AbC12xY"),
            ("http://imgur.com/AbC12xY", "https://imgur.com/AbC12xY"),
            ("HTTPS://IMGUR.COM/AbC12xY", "https://imgur.com/AbC12xY"),
            ("https://m.imgur.com/abcde", "https://m.imgur.com/abcde"),
            ("https://imgur.com/a/Zx9Qw", "https://imgur.com/a/Zx9Qw"),
            ("https://imgur.com/gallery/Zx9Qw12", "https://imgur.com/gallery/Zx9Qw12"),
            ("https://i.imgur.com/AbC12xY.jpg", "https://i.imgur.com/AbC12xY.jpg"),
            ("https://i.imgur.com/AbC12xY.JPEG", "https://i.imgur.com/AbC12xY.jpeg"),
            ("https://i.imgur.com/abcde.gifv", "https://i.imgur.com/abcde.gifv"),
            ("https://i.imgur.com/abcde.mp4", "https://i.imgur.com/abcde.mp4"),
            ("https://i.imgur.com/abcde.webp?maxwidth=640#top", "https://i.imgur.com/abcde.webp"),
            ("  https://imgur.com/AbC12xY  ", "https://imgur.com/AbC12xY"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_imgur_url(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn look_alikes_are_refused() {
        let cases = [
            // Other hosts that mention Imgur.
            "https://imgur.com.example.net/AbC12xY",
            "https://example.net/imgur.com/AbC12xY",
            "https://i.imgur.com@example.net/AbC12xY.jpg",
            "https://example.net@i.imgur.com/AbC12xY.jpg",
            "https://user:pass@imgur.com/AbC12xY",
            "https://notimgur.com/AbC12xY",
            "https://imgur.co/AbC12xY",
            "https://api.imgur.com/AbC12xY",
            // Spelling tricks on the host.
            "https://imgur.com./AbC12xY",
            "https://xn--imgur-3ya.com/AbC12xY",
            "https://ımgur.com/AbC12xY",
            "https://imgur%2ecom/AbC12xY",
            "https://imgur.com:443/AbC12xY",
            "https://imgur.com:8080/AbC12xY",
            "https://151.101.12.193/AbC12xY",
            "https://[2a04:4e42::193]/AbC12xY",
            // Path tricks.
            "https://imgur.com/%41bC12xY",
            "https://imgur.com/AbC12xY/",
            "https://imgur.com/a/../AbC12xY",
            "https://imgur.com/./AbC12xY",
            "https://imgur.com\\\\AbC12xY",
            "https://imgur.com/AbC12xY/comment",
            "https://imgur.com/upload",
            "https://imgur.com/abc",
            "https://imgur.com/abcdefgh",
            "https://imgur.com/AbC_2xY",
            "https://imgur.com/",
            "https://imgur.com",
            "https://i.imgur.com/AbC12xY",
            "https://i.imgur.com/AbC12xY.exe",
            "https://i.imgur.com/AbC12xY.jpg.exe",
            "https://imgur.com/AbC12xY.jpg",
            "https://i.imgur.com/a/AbC12xY",
            // Other schemes, and not URLs at all.
            "ftp://imgur.com/AbC12xY",
            "//imgur.com/AbC12xY",
            "imgur.com/AbC12xY",
            "javascript:alert(1)//imgur.com/AbC12xY",
            "https://imgur.com/AbC 12xY",
            "",
        ];
        for input in cases {
            let e = canonical_imgur_url(input).unwrap_err();
            assert_eq!((e.status().as_u16(), e.code()), (422, "not_imgur"), "{input}");
        }
        let long = format!("https://imgur.com/AbC12xY?{}", "x".repeat(300));
        assert!(canonical_imgur_url(&long).is_err());
    }
}
