//! Random identifiers and secrets. Every random value comes from the operating system's CSPRNG.
//! Secrets (delete tokens, admin tokens) are 256 bits, stored only as SHA-256 digests and compared
//! in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn random<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS generator failing means the machine cannot produce secrets at all; there is no
    // safe fallback, so this is one of the few places that may abort.
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}

/// A new image id: 8 characters of URL-safe base64 (48 random bits). Uniqueness is not assumed:
/// callers claim the id with a conditional write and draw again on collision.
pub fn new_image_id() -> String {
    URL_SAFE_NO_PAD.encode(random::<6>())
}

/// A new opaque identifier with 128 random bits (22 characters), for uploads and jobs.
pub fn new_id128() -> String {
    URL_SAFE_NO_PAD.encode(random::<16>())
}

/// A new secret token: 256 random bits as 43 characters of URL-safe base64.
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// The SHA-256 digest of a secret, as stored and as looked up.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn digest_hex(secret: &str) -> String {
    hex::encode(digest(secret))
}

/// SHA-256 of arbitrary bytes, as lowercase hex (content hashes for dedupe).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `presented` hashes to `expected`, in time independent of where they differ.
pub fn matches_digest(presented: &str, expected: &[u8; 32]) -> bool {
    digest(presented).ct_eq(expected).into()
}

/// Whether a string could be an image id, checked before touching storage.
pub fn is_image_id(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a string could be an id from [`new_id128`], checked before touching storage.
pub fn is_id128(s: &str) -> bool {
    s.len() == 22 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_tokens_have_the_promised_shape() {
        for _ in 0..100 {
            let id = new_image_id();
            assert!(is_image_id(&id), "{id}");
            assert_eq!(new_token().len(), 43);
            assert!(is_id128(&new_id128()));
        }
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn digests_match_only_their_secret() {
        let token = new_token();
        let stored = digest(&token);
        assert!(matches_digest(&token, &stored));
        assert!(!matches_digest(&new_token(), &stored));
        assert!(!matches_digest("", &stored));
    }

    #[test]
    fn image_id_check_rejects_wrong_shapes() {
        for bad in ["", "abc", "abcdefghi", "abc/efgh", "abc.efgh", "../../..", "abcdefg\u{e9}"] {
            assert!(!is_image_id(bad), "{bad}");
        }
    }
}
