//! Timestamps as the API and the items write them: RFC 3339, at the precision each kind of
//! record has always used (clients and stored items compare them as text, so it must not drift).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Full precision, as far as the clock gives it (invitation links).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting fails only for years outside 0 to 9999, which no clock of ours produces.
    t.format(&Rfc3339).unwrap_or_default()
}

/// Milliseconds (images, uploads of images, import jobs).
pub fn rfc3339_millis(t: OffsetDateTime) -> String {
    rfc3339(t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t))
}

/// Whole seconds (keep-alive entries, whose schedule is counted in hours).
pub fn rfc3339_seconds(t: OffsetDateTime) -> String {
    rfc3339(t.replace_nanosecond(0).unwrap_or(t))
}

/// Reads an RFC 3339 timestamp, of any precision.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_precision_writes_what_its_records_always_held() {
        let t = time::macros::datetime!(2026-12-02 10:49:57.123456789 UTC);
        type Format = fn(OffsetDateTime) -> String;
        let cases: [(Format, &str); 3] = [
            (rfc3339, "2026-12-02T10:49:57.123456789Z"),
            (rfc3339_millis, "2026-12-02T10:49:57.123Z"),
            (rfc3339_seconds, "2026-12-02T10:49:57Z"),
        ];
        for (format, want) in cases {
            assert_eq!(format(t), want);
            assert_eq!(parse_rfc3339(want).map(rfc3339_seconds).as_deref(), Some("2026-12-02T10:49:57Z"));
        }
    }
}
